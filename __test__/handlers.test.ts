import { describe, expect, it } from 'vitest'

import { Registry } from '../ts/coordinator/registry/registry'
import { busHandlers, type HandlerContext } from '../ts/coordinator/handlers'
import type { Command } from '../ts/coordinator/registry/records'
import { signJoinToken } from '../ts/coordinator/registry/join-tokens'
import { apply, JOIN_KEY, seed } from './fixtures/registry'
import { codeOf } from './helpers'

// The bus handlers' admission, against a registry fed commands directly: who is let in over
// mutual TLS, and what a refused caller costs the host it calls.

/** context is a handler context over a seeded registry (hosts h1–h3), counting catch-ups. */
function context(tls: boolean, host = {} as HandlerContext['host']) {
  const r = new Registry()
  seed(r)
  apply(r, {
    op: 'host.put',
    host: { id: 'h2', apiAddress: 'a2', raftAddress: 'r2', tags: {}, shardTypes: [] },
    by: 'h2',
  })
  const count = { catchUps: 0 }
  const ctx: HandlerContext = {
    clusterName: 'c',
    hostId: 'h1',
    apiAddress: 'a1',
    timeoutMs: 1000,
    tls,
    host,
    ready: () => true,
    runs: () => true,
    registry: () => r.state,
    catchUp: async () => {
      count.catchUps++
      await new Promise((resolve) => setTimeout(resolve, 5))
    },
    propose: async () => {
      throw new Error('nothing is proposed here')
    },
  }
  return { r, ctx, count }
}

describe('the bus admission', () => {
  it('refuses a member that shows no certificate over TLS', async () => {
    const { ctx } = context(true)
    expect(await codeOf(busHandlers(ctx).admit({ hostId: 'h2' }))).toBe('ERR_UNAUTHENTICATED')
    // Without TLS, the host id is all there is to go by.
    const plain = context(false)
    await busHandlers(plain.ctx).admit({ hostId: 'h2' })
  })

  it('bounds the registry reads that refused callers cost, however many they send', async () => {
    const { ctx, count } = context(false)
    const h = busHandlers(ctx)
    const calls = Array.from({ length: 200 }, (_, i) => h.admit({ hostId: `stranger-${i % 7}` }))
    const codes = await Promise.all(calls.map((c) => codeOf(c)))
    expect(new Set(codes)).toEqual(new Set(['ERR_UNAUTHENTICATED']))
    expect(count.catchUps).toBeLessThanOrEqual(2)
  })

  it('still admits a host that the registry learned of after the call was refused', async () => {
    const { r, ctx } = context(false)
    const h = busHandlers(ctx)
    expect(await codeOf(h.admit({ hostId: 'h4' }))).toBe('ERR_UNAUTHENTICATED')
    ctx.catchUp = async () => {
      apply(r, {
        op: 'host.put',
        host: { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: [] },
      })
    }
    await h.admit({ hostId: 'h4' })
  })

  it('adds a member only at the Raft address the registry has for its host', async () => {
    const added: string[] = []
    const add = async (shard: number, id: number, address: string) => {
      added.push(`${shard}/${id}@${address}`)
    }
    const host = { addNonVoting: add, addReplica: add } as unknown as HandlerContext['host']
    const h = busHandlers(context(false, host).ctx)
    // Replica 5 of shard 1 is h2's, at r2: a change may not move it anywhere else.
    for (const nonVoting of [true, false]) {
      const moved = { shardId: 1, replicaId: 5, raftAddress: 'evil:1', nonVoting }
      expect(await codeOf(h.addReplica(moved))).toBe('ERR_INVALID_ARGUMENT')
    }
    const other = { shardId: 1, replicaId: 2, raftAddress: 'r2', nonVoting: true } // shard 0's
    expect(await codeOf(h.addReplica(other))).toBe('ERR_INVALID_ARGUMENT')
    expect(added).toEqual([])
    await h.addReplica({ shardId: 1, replicaId: 5, raftAddress: 'r2', nonVoting: true })
    expect(added).toEqual(['1/5@r2'])
  })

  it('removes a member of a user shard only once the registry has it leaving', async () => {
    const removed: string[] = []
    const host = {
      removeReplica: async (shard: number, id: number) => {
        removed.push(`${shard}/${id}`)
      },
    } as unknown as HandlerContext['host']
    const { r, ctx, count } = context(false, host)
    const h = busHandlers(ctx)
    // Replica 5 of shard 1 is h2's, on record and not being deleted: a member keeps it.
    expect(await codeOf(h.removeReplica({ shardId: 1, replicaId: 5 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(removed).toEqual([])
    expect(count.catchUps).toBe(1) // refused only after catching up with the registry
    apply(r, { op: 'replica.update', id: 5, status: 'deleting' })
    await h.removeReplica({ shardId: 1, replicaId: 5 })
    apply(r, { op: 'replica.delete', id: 6 })
    await h.removeReplica({ shardId: 1, replicaId: 6 })
    await h.removeReplica({ shardId: 1, replicaId: 2 }) // shard 0's replica: not shard 1's
    expect(removed).toEqual(['1/5', '1/6', '1/2'])
  })

  it("proposes a join with the joiner's Raft address and certificate", async () => {
    const proposed: Command[] = []
    const { ctx } = context(true, {
      addNonVoting: async () => {},
    } as unknown as HandlerContext['host'])
    ctx.propose = async (cmd) => {
      proposed.push(cmd)
      return { ok: true, id: 7 }
    }
    const token = signJoinToken(JOIN_KEY, { id: 't', expires: 9e12, tags: {} })
    const req = { hostId: 'h4', raftAddress: 'r4', apiAddress: 'a4', token, tags: {} }
    await busHandlers(ctx)
      .join(req, { hostId: '', certificate: 'AA:01' })
      .catch(() => {}) // replica 7 is not in this registry: only the command matters here
    expect(proposed).toMatchObject([
      { op: 'host.join', hostId: 'h4', raftAddress: 'r4', certificate: 'AA:01' },
    ])
  })

  it('refuses membership changes of the registry, even from a member', async () => {
    const { ctx } = context(false)
    const h = busHandlers(ctx)
    const change = { shardId: 0, replicaId: 2, raftAddress: 'evil', nonVoting: true }
    expect(await codeOf(h.addReplica(change))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(h.removeReplica({ shardId: 0, replicaId: 2 }))).toBe('ERR_INVALID_ARGUMENT')
  })
})
