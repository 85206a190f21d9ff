// The recipes on three agents in processes of their own (harness/recipe-agent.mjs), through
// the loss of the host that leads every recipe's shard and holds a lock and an election:
// SIGKILL, as the chaos suites do.
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { loopbackAddresses } from '../harness/ports.mjs'
import { ChildClient, TempDirs, waitUntil } from './helpers'

const FIXTURE = join(__dirname, '..', 'harness', 'recipe-agent.mjs')
const dirs = new TempDirs('zongzi-recipes-')
const children: ChildClient[] = []
afterAll(async () => {
  for (const c of children) await c.call('stop').catch(() => {})
  for (const c of children) c.kill()
  dirs.removeAll()
})

interface Ids {
  kv: number
  lock: number
  election: number
}
interface Record {
  value: string
  version: number
}

describe('the recipes, when the host leading their shards is killed', () => {
  it('keep the KV’s writes, expire TTL keys, and hand the lock and the election on', async () => {
    const peers = await loopbackAddresses(3)
    const options = {
      host: { tickMs: 20 },
      reconcileMs: 100,
      liveness: { suspectMs: 300, downMs: 1000 },
      // Host 0 is made to lead every recipe's shard: the leader balance would hand them on.
      balanceLeaders: false,
    }
    const hosts = await Promise.all(peers.map(() => ChildClient.start(FIXTURE)))
    children.push(...hosts)
    const started = await Promise.all(
      hosts.map((h, i) =>
        h.call<{ hostId: string }>('start', {
          cluster: 'recipes',
          peers,
          options: { ...options, apiAddress: peers[i], dataDir: dirs.make() },
        }),
      ),
    )
    const ids = await hosts[0].call<Ids>('createShards')
    const shardIds = Object.values(ids)
    for (const h of hosts) await h.call('clocks', { shardIds, intervalMs: 100 })
    // Host 0 leads every recipe's shard.
    for (const shardId of shardIds) {
      await waitUntil(
        async () => {
          if (await hosts[0].call('leads', { shardId })) return true
          await hosts[0].call('transfer', { shardId, hostId: started[0].hostId }).catch(() => {})
          return false
        },
        { what: `host 0 leading shard ${shardId}` },
      )
    }

    // Before the fault.
    const kv = ids.kv
    const written = await hosts[1].call<{ ok: boolean; version: number }>('kvSet', {
      shardId: kv,
      key: 'config',
      value: 'v1',
    })
    expect(written.ok).toBe(true)
    await hosts[1].call('kvSet', { shardId: kv, key: 'session', value: 'x', ttlMs: 1500 })
    const token = await hosts[0].call<number>('lockAcquire', {
      shardId: ids.lock,
      name: 'job',
      owner: 'host0',
      leaseMs: 2000,
    })
    const term = await hosts[0].call<number>('campaign', {
      shardId: ids.election,
      election: 'svc',
      candidate: 'host0',
      value: 'host0',
      leaseMs: 2000,
    })
    await hosts[2].call('observe', { shardId: ids.election, election: 'svc' })
    const campaign = hosts[1].call<number>('campaign', {
      shardId: ids.election,
      election: 'svc',
      candidate: 'host1',
      value: 'host1',
      leaseMs: 2000,
    })

    hosts[0].kill()

    // The lock is free once host 0's lease ends on the new leader's clock, with a larger token.
    const next = await hosts[2].call<number>('lockAcquire', {
      shardId: ids.lock,
      name: 'job',
      owner: 'host2',
      leaseMs: 2000,
      timeoutMs: 30_000,
    })
    expect(next).toBeGreaterThan(token)
    // The waiting candidate leads, in a later term; the observer saw the change.
    expect(await campaign).toBeGreaterThan(term)
    await waitUntil(
      async () => {
        const seen = await hosts[2].call<Array<string | null>>('observed', { election: 'svc' })
        return seen.at(-1) === 'host1' && seen.includes('host0')
      },
      { what: 'the observer seeing host1 lead after host0' },
    )
    // The KV kept its acknowledged write, expired its TTL key, and still checks versions.
    const config = await hosts[2].call<Record>('kvGet', { shardId: kv, key: 'config' })
    expect(config).toMatchObject({ value: 'v1', version: written.version })
    await waitUntil(
      async () => (await hosts[2].call('kvGet', { shardId: kv, key: 'session' })) === null,
      { what: 'the TTL key expired on the new leader’s clock' },
    )
    const stale = await hosts[2].call<{ ok: boolean }>('kvSet', {
      shardId: kv,
      key: 'config',
      value: 'v2',
      ifVersion: written.version - 1,
    })
    expect(stale.ok).toBe(false)
    const swapped = await hosts[1].call<{ ok: boolean }>('kvCas', {
      shardId: kv,
      key: 'config',
      expect: 'v1',
      value: 'v2',
    })
    expect(swapped.ok).toBe(true)
  }, 120_000)
})
