import { describe, expect, it } from 'vitest'

import { type ErrorCode, ZongziError } from '../ts/binding/errors'
import {
  backoff,
  firstOf,
  type Attempt,
  hedge,
  readMayRetry,
  retry,
  writeMayRetry,
} from '../ts/coordinator/client/retry'

const err = (code: ErrorCode) => new ZongziError(code, code)

describe('the retry rule', () => {
  it.each<[ErrorCode, boolean, boolean, boolean]>([
    // code, write, idempotent write, read
    ['ERR_UNAVAILABLE', true, true, true],
    ['ERR_SHARD_NOT_FOUND', true, true, true],
    ['ERR_NO_LEADER', true, true, true],
    ['ERR_DROPPED', true, true, true],
    ['ERR_BUSY', true, true, true],
    ['ERR_LEADER_CHANGED', false, false, true],
    ['ERR_NOT_READY', true, true, true],
    ['ERR_OUTCOME_UNKNOWN', false, true, true],
    ['ERR_TIMEOUT', false, true, true],
    ['ERR_CLOSED', false, false, true],
    ['ERR_INVALID_ARGUMENT', false, false, false],
    ['ERR_ABORTED', false, false, false],
    ['ERR_PAYLOAD_TOO_LARGE', false, false, false],
  ])('%s: a write may retry %s, an idempotent write %s, a read %s', (code, w, wi, r) => {
    expect(writeMayRetry(err(code))).toBe(w)
    expect(writeMayRetry(err(code), true)).toBe(wi)
    expect(readMayRetry(err(code))).toBe(r)
  })

  it('never retries an error without a code', () => {
    expect(writeMayRetry(new Error('x'), true)).toBe(false)
    expect(readMayRetry(new Error('x'))).toBe(false)
  })

  it('backs off by doubling up to a cap', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => backoff(n))).toEqual([25, 50, 100, 200, 250, 250])
    expect(backoff(10, 1000)).toBe(1000)
  })
})

describe('retry', () => {
  it('retries retryable failures until an attempt succeeds', async () => {
    let n = 0
    const v = await retry(
      async () => {
        if (++n < 3) throw err('ERR_NO_LEADER')
        return 'ok'
      },
      { retryable: writeMayRetry, maxDelayMs: 1 },
    )
    expect([v, n]).toEqual(['ok', 3])
  })

  it('throws a failure that is not retryable at once', async () => {
    let n = 0
    const p = retry(
      async () => {
        n++
        throw err('ERR_INVALID_ARGUMENT')
      },
      { retryable: writeMayRetry },
    )
    await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(n).toBe(1)
  })

  it('throws the last failure once the deadline passes', async () => {
    const p = retry(
      async () => {
        throw err('ERR_NO_LEADER')
      },
      { retryable: writeMayRetry, deadline: Date.now() + 30 },
    )
    await expect(p).rejects.toMatchObject({ code: 'ERR_NO_LEADER' })
  })

  it('stops when the signal aborts, with the error the caller chose', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 20)
    const p = retry(
      async () => {
        throw err('ERR_NO_LEADER')
      },
      {
        retryable: () => true,
        signal: ac.signal,
        maxDelayMs: 1000,
        aborted: () => err('ERR_CLOSED'),
      },
    )
    await expect(p).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('firstOf returns the first success, and otherwise the last retryable failure', async () => {
    const tried: number[] = []
    const f = async (c: number) => {
      tried.push(c)
      if (c < 3) throw err('ERR_UNAVAILABLE')
      return c
    }
    expect(await firstOf([1, 2, 3, 4], f, readMayRetry, () => err('ERR_NOT_READY'))).toBe(3)
    expect(tried).toEqual([1, 2, 3])
    await expect(
      firstOf([1, 2], f, readMayRetry, () => err('ERR_NOT_READY')),
    ).rejects.toMatchObject({
      code: 'ERR_UNAVAILABLE',
    })
    await expect(firstOf([], f, readMayRetry, () => err('ERR_NOT_READY'))).rejects.toMatchObject({
      code: 'ERR_NOT_READY',
    })
  })

  it('hedge sends to the next candidate when one stays silent; the first answer wins', async () => {
    const aborted: number[] = []
    const late: number[] = []
    const f = (c: number, attempt: Attempt) =>
      new Promise<number>((resolve) => {
        attempt.signal.addEventListener('abort', () => aborted.push(c))
        if (c !== 1) setTimeout(() => resolve(c), 5)
      })
    const v = await hedge([1, 2, 3], f, {
      retryable: readMayRetry,
      delayMs: 10,
      none: () => err('ERR_UNAVAILABLE'),
      late: (c) => late.push(c),
    })
    expect(v).toBe(2)
    expect(late).toEqual([1])
    expect(aborted).toEqual([1])
  })

  it("hedge's attempts make their signal when asked, aborted if hedge gave them up", async () => {
    const attempts: Attempt[] = []
    const f = (c: number, attempt: Attempt) => {
      attempts.push(attempt)
      return c === 1 ? new Promise<number>(() => {}) : Promise.resolve(c)
    }
    const v = await hedge([1, 2], f, {
      retryable: readMayRetry,
      delayMs: 1,
      none: () => err('ERR_UNAVAILABLE'),
    })
    expect(v).toBe(2)
    expect(attempts.map((a) => a.aborted)).toEqual([true, false])
    expect(attempts[0].signal.aborted).toBe(true)
    expect(attempts[1].signal.aborted).toBe(false)
  })

  it('hedge moves on at once after a retryable failure, and stops at one that is not', async () => {
    const tried: number[] = []
    const o = { retryable: readMayRetry, delayMs: 10_000, none: () => err('ERR_NOT_READY') }
    const f = async (c: number) => {
      tried.push(c)
      if (c === 3) throw err('ERR_INVALID_ARGUMENT')
      throw err('ERR_UNAVAILABLE')
    }
    await expect(hedge([1, 2], f, o)).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE' })
    await expect(hedge([3, 1], f, o)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(hedge([], f, o)).rejects.toMatchObject({ code: 'ERR_NOT_READY' })
    expect(tried).toEqual([1, 2, 3])
  })

  it('hedge gives up on a silent candidate once the others failed; the caller moves', async () => {
    const late: number[] = []
    const f = (c: number) =>
      c === 1 ? new Promise<number>(() => {}) : Promise.reject(err('ERR_LEADER_CHANGED'))
    const p = hedge([1, 2], f, {
      retryable: readMayRetry,
      delayMs: 5,
      none: () => err('ERR_UNAVAILABLE'),
      late: (c) => late.push(c),
    })
    await expect(p).rejects.toMatchObject({ code: 'ERR_LEADER_CHANGED' })
    expect(late).toEqual([1])
  })
})
