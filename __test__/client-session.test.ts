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
