import { describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import {
  checkWaitOptions,
  type Replicas,
  readyShard,
} from '../ts/coordinator/control/shard-readiness'
import { apply, seed } from './fixtures/registry'

// When agent.waitForShard counts a shard as ready, as a function of the registry: shard 1 of
// the seeded registry has voters 4-6, all new at first.

function registry(active: number[], extra: unknown[] = []): Registry {
  const r = new Registry()
  seed(r)
  apply(r, ...active.map((id) => ({ op: 'replica.update', id, status: 'active' })), ...extra)
  return r
}

describe('a shard is ready', () => {
  it.each<[string, number[], Replicas, boolean, boolean]>([
    // name, active replicas, replicas wanted, runs locally, ready
    ['no replica active, all wanted', [], 'all', false, false],
    ['two of three active, all wanted', [4, 5], 'all', false, false],
    ['two of three active, a quorum wanted', [4, 5], 'quorum', false, true],
    ['one of three active, a quorum wanted', [4], 'quorum', false, false],
    ['all three active, all wanted', [4, 5, 6], 'all', false, true],
    ['a local replica wanted and running', [], 'local', true, true],
    ['a local replica wanted and not running', [4, 5, 6], 'local', false, false],
  ])('%s', (_, active, replicas, local, ready) => {
    const r = registry(active)
    const sh = readyShard(r.state, 1, replicas, () => local)
    expect(sh?.id).toBe(ready ? 1 : undefined)
  })

  it('never, for a shard that is missing or being deleted', () => {
    const deleting = registry([4, 5, 6], [{ op: 'shard.delete', id: 1 }])
    for (const [r, id] of [
      [registry([]), 9],
      [deleting, 1],
    ] as const) {
      expect(() => readyShard(r.state, id, 'all', () => true)).toThrow(
        expect.objectContaining({ code: 'ERR_SHARD_NOT_FOUND' }),
      )
    }
  })
})

describe('waitForShard options', () => {
  it('take defaults', () => {
    expect(checkWaitOptions({}, 100)).toEqual({ replicas: 'all', timeoutMs: 100 })
  })

  it.each<[string, unknown]>([
    ['not an object', 5],
    ['an unknown replicas value', { replicas: 'most' }],
    ['a zero timeout', { timeoutMs: 0 }],
    ['a timeout that is not a number', { timeoutMs: '5' }],
    ['a signal that is not an AbortSignal', { signal: {} }],
  ])('refuse %s', (_, o) => {
    try {
      checkWaitOptions(o as never, 100)
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(ZongziError)
      expect((e as ZongziError).code).toBe('ERR_INVALID_ARGUMENT')
    }
  })
})
