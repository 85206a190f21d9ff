import { describe, expect, it } from 'vitest'

import { Agent, shardType } from '../ts/index'
import { TypedKv } from './fixtures/typed-kv'
import { waitUntil } from './helpers'

const kv = shardType('typed-kv', () => new TypedKv())

describe("a client's watch served by another host", () => {
  it('resumes on another replica when that host stops, and misses no later change', async () => {
    const agents = await Agent.devCluster(4)
    // Hosts 1 to 3 run the shard's replicas (each its own factory, to find who serves the
    // watch); host 0 runs none, so its client's watch is always served by another host.
    const machines = new Map<Agent, TypedKv[]>()
    for (const a of agents.slice(1)) {
      const made: TypedKv[] = []
      machines.set(a, made)
      a.register(
        shardType('typed-kv', () => {
          const sm = new TypedKv()
          made.push(sm)
          return sm
        }),
      )
    }
    try {
      await Promise.all(agents.map((a) => a.start()))
      const sh = await agents[0].createShard(kv, { name: 'watched' })
      await agents[0].waitForShard(sh.id)
      const c = agents[0].client(sh)
      const serving = () =>
        [...machines].find(([, sms]) => sms.some((m) => m.changes.listenerCount('change') > 0))
      const seen: Array<string | undefined> = []
      const ac = new AbortController()
      for await (const v of c.watch({ key: 'w' }, { signal: ac.signal })) {
        seen.push(v)
        if (seen.length === 1) {
          const [host] = await waitUntil(serving, { what: 'the host serving the watch' })
          await host.stop()
          await c.propose({ op: 'set', key: 'w', value: 'after' })
        }
        if (v === 'after') ac.abort()
      }
      expect(seen[0]).toBeUndefined()
      expect(seen.at(-1)).toBe('after')
      // Resumed answers may repeat the last one delivered, never an older state.
      expect(seen.slice(1, -1).every((v) => v === undefined)).toBe(true)
    } finally {
      await Promise.allSettled(agents.map((a) => a.stop()))
    }
  }, 60_000)
})
