import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { Consumer, pack } from './consumer'
import { TempDirs } from './helpers'

const dirs = new TempDirs('zongzi-pack-')
const work = dirs.make()
afterAll(() => dirs.removeAll())

const SCRIPT = (imp: string) => `${imp}
import_done()
async function main(Host) {
  const { mkdtempSync, rmSync } = require_('node:fs')
  const { join } = require_('node:path')
  const { tmpdir } = require_('node:os')
  class Kv {
    map = new Map()
    update(entries) {
      return entries.map((e) => {
        this.map.set('k', e.data.toString())
        return { value: this.map.size }
      })
    }
    query() { return Buffer.from(this.map.get('k') ?? '') }
    async saveSnapshot(out) { out.end(JSON.stringify([...this.map])) }
    async recoverFromSnapshot(input) {
      let s = ''
      for await (const c of input) s += c
      this.map = new Map(JSON.parse(s))
    }
  }
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'consumer-')))
  const hosts = dirs.map((dataDir) => Host.open({ clusterId: 5, dataDir, tickMs: 10 }))
  const voters = hosts.map((h, i) => ({ replicaId: i + 1, address: h.raftAddress }))
  await Promise.all(
    hosts.map((h, i) => h.startReplica(1, i + 1, { mode: 'bootstrap', voters }, () => new Kv())),
  )
  // No waiting for a leader first: a proposal waits for one within its deadline.
  await hosts[0].propose(1, Buffer.from('hello'))
  const got = await Promise.all(hosts.map((h) => h.read(1, Buffer.alloc(0))))
  await Promise.all(hosts.map((h) => h.close()))
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  console.log(got.map((b) => Buffer.from(b).toString()).join(','))
}
`

describe('the packed npm packages', () => {
  it('install without Rust and run a three-replica shard from ESM and CommonJS, with types', () => {
    const tgz = pack(work)
    expect(tgz).toHaveLength(2)
    const app = Consumer.install(join(work, 'app'), tgz)

    app.write(
      'esm.mjs',
      SCRIPT(`import { Host } from 'zongzi'
import { createRequire } from 'node:module'
const require_ = createRequire(import.meta.url)
const import_done = () => main(Host)`),
    )
    app.write(
      'cjs.cjs',
      SCRIPT(`const { Host } = require('zongzi')
const require_ = require
const import_done = () =>
  main(Host).catch((e) => {
    console.error(e)
    process.exit(1)
  })`),
    )
    expect(app.node('esm.mjs').trim()).toBe('hello,hello,hello')
    expect(app.node('cjs.cjs').trim()).toBe('hello,hello,hello')

    // Types resolve for both module systems.
    app.write(
      'types.mts',
      `import { Host, ZongziError, type StateMachine, type Entry, type ApplyResult } from 'zongzi'
class Counter implements StateMachine {
  n = 0
  update(entries: Entry[]): ApplyResult[] { return entries.map(() => ({ value: ++this.n })) }
  query(): Uint8Array { return Buffer.from(String(this.n)) }
  async saveSnapshot(): Promise<void> {}
  async recoverFromSnapshot(): Promise<void> {}
}
export async function use(h: Host): Promise<number> {
  await h.startReplica(1, 1, { mode: 'join' }, () => new Counter())
  const r = await h.propose(1, Buffer.from('x'), { timeoutMs: 1000 })
  const code: string = new ZongziError('ERR_TIMEOUT', 'x').code
  return r.value + code.length
}
`,
    )
    app.write(
      'types.cts',
      `import zongzi = require('zongzi')
export const open: typeof zongzi.Host.open = zongzi.Host.open
`,
    )
    app.tsc(['types.mts', 'types.cts'])
  })
})
