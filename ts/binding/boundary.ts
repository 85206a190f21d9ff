// What crosses between the binding and TypeScript, and how it is packed: bulk data goes as
// typed arrays and one buffer, because objects built through N-API are slow.
import type { Entry } from './state-machine'
import { invalid, ZongziError } from './errors'

/** NativeCall is a state machine call from the engine. */
export interface NativeCall {
  token: number
  kind: 'update' | 'save' | 'recover'
  /**
   * update: entries of many replicas in the order they must be applied, packed: item i is
   * `counts[i]` entries of shard `shardIds[i]`'s start `incarnations[i]`; entry j has index
   * `indexes[j]` and the next `lengths[j]` bytes of `data`.
   */
  shardIds?: Float64Array
  incarnations?: Float64Array
  counts?: Uint32Array
  indexes?: Float64Array
  lengths?: Uint32Array
  data?: Buffer
  /** save / recover: the shard, the start of its replica, and the file to write or read. */
  shardId?: number
  incarnation?: number
  path?: string
  /** recover: the last entry the snapshot covers. */
  index?: number
}

/**
 * NativeResults are results of proposals, packed: a length of -1 marks an error, whose code
 * and message are the next of `codes` and `errors`.
 */
export interface NativeResults {
  tags: Float64Array
  values: Float64Array
  lengths: Int32Array
  data: Buffer
  errors: string[]
  codes: string[]
}

/**
 * checkBytes accepts a Uint8Array (a Buffer included) and returns a Buffer over the same memory.
 */
export function checkBytes(v: unknown, what: string): Buffer {
  if (!(v instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array or Buffer`)
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

/** UpdateItem is one replica's entries of an update call. */
export interface UpdateItem {
  shardId: number
  /** The start of the shard's replica the entries are for. */
  incarnation: number
  entries: Entry[]
}

/** unpack turns a packed update call into entry lists; entry data are views of one buffer. */
export function unpack(c: NativeCall): UpdateItem[] {
  const { shardIds, incarnations, counts, indexes, lengths, data } = c as Required<NativeCall>
  const out: UpdateItem[] = new Array(shardIds.length)
  let j = 0
  let at = 0
  for (let i = 0; i < shardIds.length; i++) {
    const entries: Entry[] = new Array(counts[i])
    for (let k = 0; k < counts[i]; k++, j++) {
      entries[k] = { index: indexes[j], data: data.subarray(at, at + lengths[j]) }
      at += lengths[j]
    }
    out[i] = { shardId: shardIds[i], incarnation: incarnations[i], entries }
  }
  return out
}

/**
 * answer turns what a state machine's `query` returned into what a read resolves with: a
 * Buffer over the same bytes, or undefined for "absent" (`undefined` or `null`).
 */
export function answer(v: unknown): Buffer | undefined {
  if (v === undefined || v === null) return undefined
  if (!(v instanceof Uint8Array))
    throw new ZongziError(
      'ERR_STATE_MACHINE',
      'query must return a Uint8Array, undefined or null',
      {
        call: 'read',
      },
    )
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

/** message is the text of a thrown value, never empty. */
export function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e)
  return m || 'state machine failed'
}

/**
 * Outcomes collects the answers to one update call and packs them the way the binding reads
 * them: per item a result count (or -1 and an error message), per result a value and a slice
 * of one data buffer.
 */
export class Outcomes {
  readonly counts: number[] = []
  readonly errors: string[] = []
  readonly values: number[] = []
  readonly lengths: number[] = []
  readonly datas: Buffer[] = []
  bytes = 0

  /** ok checks an item's results and adds them; on a bad result nothing is added. */
  ok(r: unknown, n: number): void {
    if (!Array.isArray(r) || r.length !== n) {
      throw new Error(
        `update must return ${n} results, returned ${Array.isArray(r) ? r.length : typeof r}`,
      )
    }
    for (let i = 0; i < n; i++) {
      const x = r[i]
      if (x === null || typeof x !== 'object' || typeof x.value !== 'number' || !(x.value >= 0)) {
        throw new Error(`result ${i} must be { value: non-negative number, data?: Uint8Array }`)
      }
      if (x.data !== undefined && !(x.data instanceof Uint8Array)) {
        throw new Error(`result ${i} data must be a Uint8Array`)
      }
    }
    for (let i = 0; i < n; i++) {
      const x = r[i]
      this.values.push(x.value)
      const len = x.data === undefined ? 0 : x.data.byteLength
      this.lengths.push(len)
      if (len > 0) {
        this.datas.push(checkBytes(x.data, 'result data'))
        this.bytes += len
      }
    }
    this.counts.push(n)
  }

  fail(msg: string): void {
    this.counts.push(-1)
    this.errors.push(msg)
  }

  pack() {
    return {
      counts: Int32Array.from(this.counts),
      errors: this.errors,
      values: Float64Array.from(this.values),
      lengths: Uint32Array.from(this.lengths),
      data: this.datas.length === 0 ? EMPTY : Buffer.concat(this.datas, this.bytes),
    }
  }
}

/** EMPTY is the shared empty buffer. */
export const EMPTY = Buffer.alloc(0)
