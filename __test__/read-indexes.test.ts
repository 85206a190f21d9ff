import { describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/binding/errors'
import { ReadIndexes } from '../ts/binding/read-indexes'

// A host's read-index calls: those of a shard made in one turn of the event loop share one
// call into the engine, made after all of them, until the latest of their deadlines.

const turn = () => new Promise((r) => setImmediate(r))

describe('read indexes', () => {
  it('share one engine call per shard within a turn, made after all of them', async () => {
    const calls: Array<[number, number]> = []
    let index = 0
    const r = new ReadIndexes(async (shardId, timeoutMs) => {
      calls.push([shardId, timeoutMs])
      return ++index
    })
    const first = [r.readIndex(1, 100), r.readIndex(1, 5_000), r.readIndex(2, 100)]
    expect(calls).toEqual([]) // nothing is called before the turn ends
    expect(await Promise.all(first)).toEqual([1, 1, 2])
    // One call per shard, until the latest deadline of its calls.
    expect(calls.map(([s]) => s)).toEqual([1, 2])
    expect(calls[0][1]).toBeGreaterThan(4_900)
    expect(calls[1][1]).toBeLessThanOrEqual(100)
    await turn()
    // A call made after the shared one started is never answered by it.
    expect(await r.readIndex(1, 100)).toBe(3)
    expect(calls).toHaveLength(3)
  })

  it('fails a call at its own deadline when the shared call runs longer', async () => {
    const r = new ReadIndexes(() => new Promise<number>(() => {}))
    let longSettled = false
    r.readIndex(1, 60_000).then(
      () => {
        longSettled = true
      },
      () => {
        longSettled = true
      },
    )
    const err = await r.readIndex(1, 5).catch((e) => e)
    expect(err).toBeInstanceOf(ZongziError)
    expect(err.code).toBe('ERR_TIMEOUT')
    expect(longSettled).toBe(false)
  })

  it("gives every call of a batch the engine call's failure", async () => {
    const r = new ReadIndexes(async () => {
      throw new ZongziError('ERR_NO_LEADER', 'no leader')
    })
    const all = await Promise.allSettled([r.readIndex(1, 100), r.readIndex(1, 50)])
    expect(all.map((x) => x.status)).toEqual(['rejected', 'rejected'])
    expect(all.map((x) => (x as PromiseRejectedResult).reason.code)).toEqual([
      'ERR_NO_LEADER',
      'ERR_NO_LEADER',
    ])
  })
})
