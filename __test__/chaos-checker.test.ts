import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'

import { History } from '../chaos/history.mjs'
import { TempDirs } from './helpers'

// The chaos suite's checker (porcupine, chaos/checker) on histories small enough to read: it
// passes a linearizable one and flags a stale read and a lost write.

const dirs = new TempDirs('zongzi-checker-')
let checker = ''

beforeAll(() => {
  checker = join(dirs.make(), 'checker')
  const dir = join(__dirname, '..', 'chaos', 'checker')
  execFileSync('go', ['build', '-C', dir, '-o', checker, '.'], { stdio: 'ignore' })
}, 120_000)

type Op = { op: 'read' | 'write' | 'cas'; value?: string; from?: string; to?: string }

/** check builds a history of key k from [op, call, return, answer] rows and checks it. */
function check(rows: Array<[Op, number, number | undefined, { value?: string; ok?: boolean }?]>) {
  const h = new History()
  rows.forEach(([op, call, ret, answer], i) => {
    h.invoke({ id: String(i), client: i, key: 'k', call, ...op })
    if (ret !== undefined) h.complete({ id: String(i), return: ret, ...answer })
  })
  const input = `${h.lines().join('\n')}\n`
  return JSON.parse(execFileSync(checker, [], { input }).toString()).linearizable as boolean
}

const w = (value: string): Op => ({ op: 'write', value })
const r: Op = { op: 'read' }

describe('the linearizability checker', () => {
  it('passes a linearizable history, with overlaps and a write of unknown outcome', () => {
    expect(
      check([
        [w('a'), 0, 10],
        [w('b'), 5, 30],
        [r, 12, 20, { value: 'a' }],
        [r, 31, 40, { value: 'b' }],
        [{ op: 'cas', from: 'b', to: 'c' }, 41, undefined],
        [r, 50, 60, { value: 'c' }],
        [r, 61, 70, { value: 'c' }],
        [r, 61, undefined],
      ]),
    ).toBe(true)
  })

  it('flags a stale read', () => {
    expect(
      check([
        [w('a'), 0, 10],
        [w('b'), 20, 30],
        [r, 40, 50, { value: 'a' }],
      ]),
    ).toBe(false)
  })

  it('flags a lost write', () => {
    expect(
      check([
        [w('a'), 0, 10],
        [r, 20, 30, { value: '' }],
      ]),
    ).toBe(false)
    const h = new History()
    h.invoke({ id: 'w', client: 1, key: 'k', op: 'write', value: 'a', call: 0 })
    h.complete({ id: 'w', return: 10, ok: true })
    expect(h.lostWrites({ k: '' })).toBe(1)
    expect(h.lostWrites({ k: 'a' })).toBe(0)
  })

  it('flags a compare-and-set that swapped a value it could not have found', () => {
    expect(
      check([
        [w('a'), 0, 10],
        [{ op: 'cas', from: 'x', to: 'y' }, 20, 30, { ok: true }],
      ]),
    ).toBe(false)
  })
})
