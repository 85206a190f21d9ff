// A typed state machine behind the engine's byte contract: what runs a StateMachine<Command,
// Result, Query, Answer> registered with a codec.
import type { Readable, Writable } from 'node:stream'

import { type Codec, encodeResult, failedDecode, reason } from './codec'
import { ZongziError } from './errors'
import {
  type Entry,
  isPersistent,
  type PersistentStateMachine,
  type StateMachine,
} from './state-machine'

/**
 * inBytes runs a typed state machine behind the byte contract: entries are decoded before
 * `update` sees them (one that does not decode applies nothing and answers so), results and
 * answers are encoded, queries decoded; snapshots, `stream`, `open`, `sync` and `close` pass
 * through.
 */
export function inBytes<C, R, Q, A>(
  sm: StateMachine<C, R, Q, A>,
  codec: Codec,
): StateMachine | PersistentStateMachine {
  const query = (q: Buffer): C | Q => {
    try {
      return codec.decode(q) as Q
    } catch (e) {
      throw new ZongziError('ERR_INVALID_ARGUMENT', `the query did not decode: ${reason(e)}`, {
        call: 'read',
      })
    }
  }
  const encodeAnswer = (a: unknown): Uint8Array | undefined => {
    if (a === undefined) return undefined
    try {
      return codec.encode(a)
    } catch (e) {
      throw new ZongziError('ERR_STATE_MACHINE', `the answer did not encode: ${reason(e)}`, {
        call: 'read',
      })
    }
  }
  const bytesSm: StateMachine = {
    update: (entries) => update(sm, codec, entries),
    query: (q) => {
      const a = sm.query(query(q) as Q)
      return a instanceof Promise ? a.then(encodeAnswer) : encodeAnswer(a)
    },
    saveSnapshot: (out: Writable) => sm.saveSnapshot(out),
    recoverFromSnapshot: (input: Readable, index: number) => sm.recoverFromSnapshot(input, index),
  }
  const watch = sm.watch?.bind(sm)
  if (watch) {
    bytesSm.watch = async function* (q, signal) {
      for await (const a of watch(
        query(Buffer.from(q.buffer, q.byteOffset, q.byteLength)) as Q,
        signal,
      ))
        yield codec.encode(a)
    }
  }
  if (sm.stream) bytesSm.stream = sm.stream.bind(sm)
  if (sm.close) bytesSm.close = sm.close.bind(sm)
  if (!isPersistent(sm)) return bytesSm
  return { ...bytesSm, open: () => sm.open(), sync: () => sm.sync() }
}

/**
 * update decodes a batch, applies the entries that decode (in order, as one batch) and
 * answers every entry: with its encoded result, or with why it did not decode.
 */
function update<C, R, Q, A>(
  sm: StateMachine<C, R, Q, A>,
  codec: Codec,
  entries: Entry[],
): ReturnType<StateMachine['update']> {
  const out = new Array(entries.length)
  const decoded: Entry<C>[] = []
  const at: number[] = []
  for (let i = 0; i < entries.length; i++) {
    try {
      decoded.push({ index: entries[i].index, data: codec.decode(entries[i].data) as C })
      at.push(i)
    } catch (e) {
      out[i] = failedDecode(e)
    }
  }
  const answer = (results: R[]) => {
    if (!Array.isArray(results) || results.length !== decoded.length)
      throw new Error(`update returned ${results?.length} results for ${decoded.length} entries`)
    for (let j = 0; j < at.length; j++) out[at[j]] = encodeResult(codec, results[j])
    return out
  }
  if (decoded.length === 0) return out
  const r = sm.update(decoded)
  return r instanceof Promise ? r.then(answer) : answer(r)
}
