import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type { Agent, ShardSpec } from '../ts/index'
import { set } from '../examples/kv.mjs'
import { codeOf, TempDirs } from './helpers'
import { threePeers } from './fixtures/peers'

// createShards on three agents: many shards in one registry command, all or none, their
// records in the order asked; a bad shard refuses the whole call, naming it.

const dirs = new TempDirs('zongzi-create-shards-')
let agents: Agent[] = []

beforeAll(async () => {
  agents = await threePeers('create-shards', dirs)
})

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.stop()))
  dirs.removeAll()
})

const voters3 = { members: { count: 3 } }
const shardCount = (a: Agent) => a.state((s) => s.shards.size)

/** refusal is the error a call rejects with. */
async function refusal(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p
  } catch (e) {
    return e as { code?: string; message: string }
  }
  throw new Error('the call was not refused')
}

describe('createShards', () => {
  it('creates many shards in one registry command, in the order asked, and runs them', async () => {
    const [a, b] = agents
    const specs: ShardSpec[] = Array.from({ length: 40 }, (_, i) => ({
      type: 'kv',
      placement: voters3,
      ...(i % 10 === 0 ? { name: `named-${i}`, tags: { n: String(i) } } : {}),
    }))
    const made = await a.createShards(specs)
    expect(made).toHaveLength(40)
    expect(new Set(made.map((s) => s.id)).size).toBe(40)
    expect(made[10]).toMatchObject({ name: 'named-10', tags: { n: '10' }, placement: voters3 })
    // One command: every record was written at one index of the registry's log.
    expect(new Set(made.map((s) => s.created)).size).toBe(1)
    await Promise.all(made.map((s) => b.waitForShard(s.id)))
    const w = await b.client(made[39].id).propose(set('k', 'v'))
    expect(w.value).toBe(1)

    // Again with names on record and a name twice: those shards are answered, not made again.
    const again = await b.createShards([
      { type: 'kv', name: 'named-10' },
      { type: 'kv', name: 'fresh' },
      { type: 'kv', name: 'fresh' },
    ])
    expect(again[0].id).toBe(made[10].id)
    expect(again[1].id).toBe(again[2].id)
    expect(await a.findShard('fresh')).toMatchObject({ id: again[1].id })
    expect(await a.createShards([])).toEqual([])
  })

  it('creates none when one shard is bad, and says which', async () => {
    const [a] = agents
    const before = await shardCount(a)
    const bad = await refusal(
      a.createShards([
        { type: 'kv', name: 'ok-1' },
        { type: 'kv', tags: { '': 'x' } },
      ]),
    )
    expect(bad.code).toBe('ERR_INVALID_ARGUMENT')
    expect(bad.message).toMatch(/item 1: tags must map/)
    // A name on record with another type: the registry refuses the whole command.
    const clash = await refusal(
      a.createShards([
        { type: 'kv', name: 'ok-2' },
        { type: 'other', name: 'named-0' },
      ]),
    )
    expect(clash.code).toBe('ERR_INVALID_ARGUMENT')
    expect(clash.message).toMatch(/item 1: shard "named-0" exists with type kv/)
    expect(await a.findShard('ok-1')).toBeUndefined()
    expect(await a.findShard('ok-2')).toBeUndefined()
    expect(await shardCount(a)).toBe(before)
    const notList = 'kv' as unknown as ShardSpec[]
    expect(await codeOf(() => a.createShards(notList))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => a.createShards([null as unknown as ShardSpec]))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(() => a.createShards([{ type: 'zongzi:registry' }]))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
  })
})
