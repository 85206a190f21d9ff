import { describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/binding/errors'
import { ReadIndexes } from '../ts/binding/read-indexes'

// A host's read-index calls: those of a shard made in one turn of the event loop share one
// call into the engine, made after all of them.

const turn = () => new Promise((r) => setImmediate(r))

describe('read indexes', () => {
  it('share one engine call per shard and timeout within a turn, made after all of them', async () => {
    const calls: Array<[number, number]> = []
    let index = 0
    const r = new ReadIndexes(async (shardId, timeoutMs) => {
      calls.push([shardId, timeoutMs])
      return ++index
    })
    const first = [r.readIndex(1, 100), r.readIndex(1, 100), r.readIndex(2, 100)]
    expect(calls).toEqual([]) // nothing is called before the turn ends
    const other = r.readIndex(1, 50) // another timeout goes on its own, at once
    expect(calls).toEqual([[1, 50]])
    expect(await Promise.all(first)).toEqual([2, 2, 3])
    expect(await other).toBe(1)
    await turn()
    // A call made after the shared one started is never answered by it.
    const later = r.readIndex(1, 100)
    expect(await later).toBe(4)
    expect(calls).toEqual([
      [1, 50],
      [1, 100],
      [2, 100],
      [1, 100],
    ])
  })

  it("gives every call of a batch the engine call's failure", async () => {
    const r = new ReadIndexes(async () => {
      throw new ZongziError('ERR_NO_LEADER', 'no leader')
    })
    const all = await Promise.allSettled([r.readIndex(1, 100), r.readIndex(1, 100)])
    expect(all.map((x) => x.status)).toEqual(['rejected', 'rejected'])
    expect(all.map((x) => (x as PromiseRejectedResult).reason.code)).toEqual([
      'ERR_NO_LEADER',
      'ERR_NO_LEADER',
    ])
  })
})
