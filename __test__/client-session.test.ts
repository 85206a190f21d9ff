import { describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/index'
import { ClientSession, inSession } from '../ts/coordinator/client/session'

// The client session a ShardClient's writes go in: what a write's failure says when the
// session itself could not be registered.

describe('a write in a client session', () => {
  it('says it did not apply when its session could not be registered', async () => {
    for (const code of ['ERR_TIMEOUT', 'ERR_OUTCOME_UNKNOWN', 'ERR_CLOSED'] as const) {
      const session = new ClientSession(async () => {
        throw new ZongziError(code, 'no replica answered')
      })
      let sent = 0
      const err = await inSession(session, 100, async () => {
        sent++
        return 'applied'
      }).catch((e) => e)
      expect(sent, code).toBe(0)
      expect(err, code).toBeInstanceOf(ZongziError)
      expect(err.outcome, code).toBe('not-applied')
      expect(err.message, code).toMatch(/not sent/)
    }
  })

  it('keeps the failure of a registration that says itself that nothing applied', async () => {
    const session = new ClientSession(async () => {
      throw new ZongziError('ERR_SHARD_NOT_FOUND', 'shard 9 not found')
    })
    const err = await inSession(session, 100, async () => 'applied').catch((e) => e)
    expect(err.code).toBe('ERR_SHARD_NOT_FOUND')
  })
})

describe('a client session evicted under writes in flight', () => {
  it('is registered again once, and the new session leaves no series open', async () => {
    const registered: number[] = []
    const session = new ClientSession(async (clientId) => {
      await new Promise((r) => setImmediate(r))
      registered.push(clientId)
    })
    // The shard evicted the first session: every write sent in it is refused as expired.
    const evicted = new Set<number>()
    const write = () =>
      inSession(session, 1000, async (ref) => {
        await new Promise((r) => setImmediate(r))
        if (ref.clientId === registered[0]) {
          evicted.add(ref.clientId)
          throw new ZongziError('ERR_SESSION_EXPIRED', 'session evicted')
        }
        return ref
      })
    const refs = await Promise.all([write(), write(), write()])
    expect(evicted.size).toBe(1)
    expect(registered).toHaveLength(2)
    // Each write went once more in the one new session, with series of its own.
    for (const r of refs) expect(r.clientId).toBe(registered[1])
    expect(new Set(refs.map((r) => r.series)).size).toBe(3)
    // Every series of the new session has been answered: the next write says so.
    const next = await inSession(session, 1000, async (ref) => ref)
    expect(next.clientId).toBe(registered[1])
    expect(next.respondedTo).toBe(next.series - 1)
  })
})
