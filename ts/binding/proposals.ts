// Proposals: a host's proposals cross into the engine in batches and come back in batches.
import { EMPTY, type NativeResults } from './boundary'
import { fromNative, isErrorCode, ZongziError } from './errors'
import type { NativeHost } from './native'

/** ProposalResult is the local state machine's result for one proposal. */
export interface ProposalResult {
  value: number
  data: Buffer
}

interface Pending {
  shardId: number
  resolve: (r: ProposalResult) => void
  reject: (e: Error) => void
}

/**
 * SessionRef places a proposal in a client session: the client's id, the proposal's series
 * (from 1) and the series up to which the client has every answer.
 */
export interface SessionRef {
  clientId: number
  series: number
  respondedTo: number
}

/** Batch is the proposals not yet handed to the engine; they share one timeout. */
interface Batch {
  shards: number[]
  datas: Buffer[]
  tags: number[]
  /** Three numbers per proposal (client id 0: none); empty while no proposal has one. */
  sessions: number[]
  bytes: number
  timeout: number
}

/**
 * Proposals batches a host's proposals and settles them. Proposals made in the same microtask
 * with the same timeout cross into the engine in one call; the engine delivers results in
 * batches too, each matched to its proposal by tag. While any proposal waits, the native host
 * is marked active, so that the Node.js process stays alive for its result.
 */
export class Proposals {
  readonly #native: NativeHost
  /** Proposals waiting for their results, by tag. */
  readonly #pending = new Map<number, Pending>()
  /** Proposals not yet handed to the engine; flushed together once per microtask. */
  #queue: Batch | undefined
  #nextTag = 1
  #closing = false

  constructor(native: NativeHost) {
    this.#native = native
  }

  /** add queues one proposal of checked input and resolves with its result. */
  add(
    shardId: number,
    bytes: Buffer,
    timeout: number,
    session?: SessionRef,
  ): Promise<ProposalResult> {
    return new Promise((resolve, reject) => {
      const tag = this.#nextTag++
      if (this.#pending.size === 0) this.#native.setActive(true)
      this.#pending.set(tag, { shardId, resolve, reject })
      let q = this.#queue
      if (q && q.timeout !== timeout) {
        this.flush()
        q = undefined
      }
      if (!q) {
        q = { shards: [], datas: [], tags: [], sessions: [], bytes: 0, timeout }
        this.#queue = q
        queueMicrotask(() => this.flush())
      }
      if (session && q.sessions.length === 0) q.sessions = new Array(3 * q.tags.length).fill(0)
      if (session) q.sessions.push(session.clientId, session.series, session.respondedTo)
      else if (q.sessions.length > 0) q.sessions.push(0, 0, 0)
      q.shards.push(shardId)
      q.datas.push(bytes)
      q.tags.push(tag)
      q.bytes += bytes.length
    })
  }

  /** flush hands the queued proposals to the engine; those it refuses reject at once. */
  flush(): void {
    const q = this.#queue
    this.#queue = undefined
    if (!q || q.tags.length === 0) return
    try {
      const lengths = new Uint32Array(q.datas.length)
      for (let i = 0; i < q.datas.length; i++) lengths[i] = q.datas[i].length
      const data = Buffer.concat(q.datas, q.bytes)
      this.#native.proposeMany(
        Float64Array.from(q.shards),
        Float64Array.from(q.tags),
        lengths,
        data,
        q.timeout,
        q.sessions.length > 0 ? Float64Array.from(q.sessions) : undefined,
      )
    } catch (e) {
      const err = this.#closing ? new ZongziError('ERR_CLOSED', 'host closed') : fromNative(e)
      for (const tag of q.tags) this.#reject(tag, err)
    }
  }

  #reject(tag: number, e: Error): void {
    const p = this.#pending.get(tag)
    if (!p) return
    this.#pending.delete(tag)
    if (this.#pending.size === 0 && !this.#closing) this.#native.setActive(false)
    p.reject(e)
  }

  /** settle resolves or rejects the proposals whose results the engine delivered. */
  settle(r: NativeResults): void {
    let at = 0
    let nextError = 0
    for (let i = 0; i < r.tags.length; i++) {
      const len = r.lengths[i]
      const p = this.#pending.get(r.tags[i])
      if (len < 0) {
        const code = r.codes[nextError]
        const msg = r.errors[nextError++]
        if (p) p.reject(new ZongziError(isErrorCode(code) ? code : 'ERR_INTERNAL', msg))
      } else {
        if (p)
          p.resolve({ value: r.values[i], data: len === 0 ? EMPTY : r.data.subarray(at, at + len) })
        at += len
      }
      this.#pending.delete(r.tags[i])
    }
    if (this.#pending.size === 0 && !this.#closing) this.#native.setActive(false)
  }

  /**
   * closing starts the host's close: what is queued is handed over now, and a proposal the
   * engine refuses from here on fails with ERR_CLOSED. Call it before closing the native host.
   */
  closing(): void {
    this.#closing = true
    this.flush()
  }

  /**
   * stopped fails every proposal of a shard still waiting with ERR_OUTCOME_UNKNOWN: the host
   * stopped its replica, so no result of this replica's will come (a result that comes anyway
   * is dropped). The other replicas may still commit them: their outcome is unknown, not a
   * failure of the state machine (which an apply batch still in flight would report).
   */
  stopped(shardId: number): void {
    const gone = `the replica of shard ${shardId} on this host stopped before its outcome`
    const e = new ZongziError('ERR_OUTCOME_UNKNOWN', gone)
    for (const [tag, p] of this.#pending) if (p.shardId === shardId) this.#reject(tag, e)
  }

  /** rejectAll fails every proposal still waiting with `e`; the host calls it once closed. */
  rejectAll(e: Error): void {
    for (const p of this.#pending.values()) p.reject(e)
    this.#pending.clear()
  }
}
