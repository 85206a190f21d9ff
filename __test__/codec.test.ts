import type { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'

import { isPersistent, type StateMachine } from '../ts/binding/state-machine'
import { inBytes } from '../ts/binding/typed-machine'
import { decodeResult, RESULT } from '../ts/binding/codec'
import { bytesCodec, type Entry, jsonCodec, type PersistentStateMachine } from '../ts/index'

// The codecs and the adapter that runs a typed state machine behind the engine's byte
// contract, without an engine.

const entry = (index: number, v: unknown): Entry => ({
  index,
  data: Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)),
})

/** Sum adds numbers; a negative one is refused in its result, not thrown. */
class Sum implements StateMachine<number, { total: number } | { error: string }, null, number> {
  total = 0
  seen: number[] = []
  update(entries: Entry<number>[]) {
    return entries.map(({ index, data }) => {
      this.seen.push(index)
      if (data < 0) return { error: 'negative' }
      this.total += data
      return { total: this.total }
    })
  }
  query() {
    return this.total
  }
  async saveSnapshot(out: Writable) {
    out.end(String(this.total))
  }
  async recoverFromSnapshot() {}
}

describe('jsonCodec and bytesCodec', () => {
  it('carry JSON values, undefined as no bytes, and refuse what JSON cannot hold', () => {
    for (const v of [{ a: [1, 'x', null] }, 'text', 0, false, null])
      expect(jsonCodec.decode(Buffer.from(jsonCodec.encode(v)))).toEqual(v)
    expect(jsonCodec.encode(undefined).length).toBe(0)
    expect(jsonCodec.decode(Buffer.alloc(0))).toBeUndefined()
    expect(() => jsonCodec.encode(() => 1)).toThrow(/no JSON value/)
    expect(() => jsonCodec.encode(1n)).toThrow()
  })

  it('carry bytes as they are, and refuse anything else', () => {
    const b = Buffer.from('raw')
    expect(bytesCodec.encode(b)).toBe(b)
    expect(bytesCodec.decode(b)).toBe(b)
    expect(() => bytesCodec.encode('text')).toThrow(/Uint8Array/)
  })
})

describe('a typed state machine in bytes', () => {
  it('applies the entries that decode, in order, and answers the others unapplied', () => {
    const sm = new Sum()
    const out = inBytes(sm, jsonCodec).update([
      entry(5, 2),
      entry(6, 'not json'),
      entry(7, 3),
      entry(8, -1),
    ]) as Array<{ value: number; data: Uint8Array }>
    expect(sm.seen).toEqual([5, 7, 8])
    expect(out.map((r) => r.value)).toEqual([RESULT.ok, RESULT.undecodable, RESULT.ok, RESULT.ok])
    const results = out.map((r) => ({ value: r.value, data: Buffer.from(r.data) }))
    expect(decodeResult(jsonCodec, results[0])).toEqual({ total: 2 })
    expect(decodeResult(jsonCodec, results[2])).toEqual({ total: 5 })
    expect(decodeResult(jsonCodec, results[3])).toEqual({ error: 'negative' })
    expect(() => decodeResult(jsonCodec, results[1])).toThrow(/nothing applied/)
  })

  it('waits for an asynchronous update, and refuses a wrong number of results', async () => {
    const sm = new Sum()
    const async: StateMachine<number, number, null, number> = {
      ...sm,
      update: async (es) => es.map((e) => e.data * 2),
      query: () => 0,
      saveSnapshot: async () => {},
      recoverFromSnapshot: async () => {},
    }
    const out = (await inBytes(async, jsonCodec).update([entry(1, 21)])) as Array<{
      data: Uint8Array
    }>
    expect(Buffer.from(out[0].data).toString()).toBe('42')
    const short = { ...async, update: () => [] }
    expect(() => inBytes(short, jsonCodec).update([entry(1, 1)])).toThrow(/0 results for 1/)
  })

  it('encodes answers, undefined as absent, and fails a query that does not decode', async () => {
    const sm = inBytes(new Sum(), jsonCodec)
    expect(Buffer.from((await sm.query(Buffer.from('null'))) as Uint8Array).toString()).toBe('0')
    const absent = inBytes({ ...new Sum(), query: () => undefined } as never, jsonCodec)
    expect(await absent.query(Buffer.from('null'))).toBeUndefined()
    expect(() => sm.query(Buffer.from('{'))).toThrow(/query did not decode/)
  })

  it('keeps a persistent state machine persistent, open and sync passing through', async () => {
    const calls: string[] = []
    const p: PersistentStateMachine<number, number, null, number> = {
      update: (es) => es.map((e) => e.data),
      query: () => 0,
      saveSnapshot: async () => {},
      recoverFromSnapshot: async () => {},
      open: async () => {
        calls.push('open')
        return 9
      },
      sync: async () => {
        calls.push('sync')
      },
    }
    const wrapped = inBytes(p, jsonCodec)
    expect(isPersistent(wrapped)).toBe(true)
    expect(isPersistent(inBytes(new Sum(), jsonCodec))).toBe(false)
    if (!isPersistent(wrapped)) throw new Error('not persistent')
    expect(await wrapped.open()).toBe(9)
    await wrapped.sync()
    expect(calls).toEqual(['open', 'sync'])
  })
})
