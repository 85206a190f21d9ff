// Codecs: how the values of a typed state machine (its commands, results, queries and answers)
// travel as bytes, and how a result travels in the engine's ApplyResult.
import { invalid, ZongziError } from './errors'
import type { ApplyResult } from './state-machine'

/**
 * Codec turns the values a typed state machine takes and gives into bytes and back. Both
 * directions must be deterministic: replicas decode the same commands from the same bytes.
 * `decode` gets what `encode` made (a result that encodes to no bytes decodes from an empty
 * Buffer).
 */
export interface Codec {
  /** encode turns a value into bytes; it throws for a value it cannot represent. */
  encode(value: unknown): Uint8Array
  /** decode turns bytes back into the value; it throws for bytes it cannot read. */
  decode(bytes: Buffer): unknown
}

const EMPTY = Buffer.alloc(0)

/**
 * jsonCodec is the default codec: values as UTF-8 JSON text (so plain objects, arrays, strings,
 * finite numbers, booleans and null). `undefined` travels as no bytes and comes back as
 * `undefined`.
 */
export const jsonCodec: Codec = {
  encode(value) {
    if (value === undefined) return EMPTY
    const text = JSON.stringify(value)
    if (text === undefined) throw invalid(`a ${typeof value} is no JSON value`)
    return Buffer.from(text)
  },
  decode(bytes) {
    return bytes.length === 0 ? undefined : JSON.parse(bytes.toString('utf8'))
  },
}

/**
 * bytesCodec is the codec of a state machine typed in bytes: commands, results, queries and
 * answers are Uint8Arrays as they are (received as Buffers).
 */
export const bytesCodec: Codec = {
  encode(value) {
    if (!(value instanceof Uint8Array)) throw invalid('a value in bytes must be a Uint8Array')
    return value
  },
  decode(b) {
    return b
  },
}

/**
 * How a typed state machine's result travels in an ApplyResult: `value` says which, `data`
 * holds the encoded result or, for a failure, its message.
 */
export const RESULT = {
  /** The command applied; `data` is the encoded result. */
  ok: 0,
  /** The command's bytes did not decode: nothing applied. */
  undecodable: 1,
  /** The command applied, but its result did not encode. */
  unencodable: 2,
} as const

/** encodeResult wraps a typed state machine's result for the engine. */
export function encodeResult(codec: Codec, result: unknown): ApplyResult {
  try {
    return { value: RESULT.ok, data: codec.encode(result) }
  } catch (e) {
    return { value: RESULT.unencodable, data: Buffer.from(`result: ${reason(e)}`) }
  }
}

/** failedDecode is the ApplyResult of a command whose bytes did not decode. */
export function failedDecode(e: unknown): ApplyResult {
  return { value: RESULT.undecodable, data: Buffer.from(`command: ${reason(e)}`) }
}

/**
 * decodeResult unwraps what encodeResult made, as a proposer receives it: a command that did
 * not decode fails with ERR_INVALID_ARGUMENT (it changed nothing), a result that did not
 * encode with ERR_STATE_MACHINE (the command applied).
 */
export function decodeResult(codec: Codec, r: { value: number; data: Buffer }): unknown {
  if (r.value === RESULT.ok) return codec.decode(r.data)
  const why = `the state machine's codec failed on the ${r.data.toString('utf8')}`
  if (r.value === RESULT.undecodable)
    throw new ZongziError('ERR_INVALID_ARGUMENT', `${why}; nothing applied`)
  throw new ZongziError('ERR_STATE_MACHINE', `${why}; the command applied`)
}

/** reason is the text of a thrown value. */
export function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
