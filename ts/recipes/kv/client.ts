// The KV recipe's client: typed calls over a shard that runs a KvStateMachine.
import { tick } from '../clock'
import type { CallOptions, ShardCalls } from '../shard'
import { parse } from '../shard'
import {
  decodeOutcome,
  encodeCommand,
  encodeQuery,
  type KvCompare,
  type KvOutcome,
  type KvPage,
  type KvRecord,
  type KvWrite,
} from './codec'

/** SetOptions condition and bound a write. */
export interface SetOptions extends CallOptions {
  /** Milliseconds the key lives, on the shard's log time (see LeaderClock). */
  ttlMs?: number
  /** Write only if the key is at this version (0: only if it is absent). */
  ifVersion?: number
}

/** RangeOptions choose a page of a range. */
export interface RangeOptions extends CallOptions {
  /** Start after this key (the `next` of the previous page). */
  after?: string
  /** Records per page (default 100, at most 1,000). */
  limit?: number
}

/** Transaction is a write of several keys at once, if each compared key is at its version. */
export interface Transaction {
  compare?: KvCompare[]
  set?: KvWrite[]
  delete?: string[]
}

/**
 * KvClient reads and writes a shard that runs a KvStateMachine, through a ShardClient
 * (`new KvClient(agent.client(shardId))`). Reads are linearizable. A refused conditional
 * write resolves with `{ ok: false, current }`; only consensus failures reject.
 */
export class KvClient {
  /** Makes a client over `shard`. */
  constructor(readonly shard: ShardCalls) {}

  /** get reads a key's record, or undefined if it is absent (or expired). */
  async get(key: string, o: CallOptions = {}): Promise<KvRecord | undefined> {
    return parse<KvRecord>(await this.shard.read(encodeQuery({ q: 'get', key }), o))
  }

  /** set writes a key, with a TTL or a version condition if given. */
  async set(key: string, value: string, o: SetOptions = {}): Promise<KvOutcome> {
    const { ttlMs, ifVersion, ...call } = o
    return this.#write({ op: 'set', key, value, ttlMs, ifVersion }, call)
  }

  /** delete deletes a key (if it is at `ifVersion`, when given). */
  async delete(key: string, o: CallOptions & { ifVersion?: number } = {}): Promise<KvOutcome> {
    const { ifVersion, ...call } = o
    return this.#write({ op: 'delete', key, ifVersion }, call)
  }

  /**
   * compareAndSet writes `value` if the key holds `expect` now (null: if it is absent).
   */
  async compareAndSet(
    key: string,
    expect: string | null,
    value: string,
    o: CallOptions & { ttlMs?: number } = {},
  ): Promise<KvOutcome> {
    const { ttlMs, ...call } = o
    return this.#write({ op: 'cas', key, expect, value, ttlMs }, call)
  }

  /** transaction writes and deletes keys at once if every compared key is at its version. */
  async transaction(t: Transaction, o: CallOptions = {}): Promise<KvOutcome> {
    return this.#write(
      { op: 'txn', compare: t.compare ?? [], set: t.set ?? [], delete: t.delete ?? [] },
      o,
    )
  }

  /** range reads one page of the keys that start with `prefix`, in key order. */
  async range(prefix: string, o: RangeOptions = {}): Promise<KvPage> {
    const { after, limit, ...call } = o
    const q = encodeQuery({ q: 'range', prefix, after, limit: limit ?? 100 })
    return parse<KvPage>(await this.shard.read(q, call)) ?? { records: [] }
  }

  /** scan yields every record whose key starts with `prefix`, a page at a time. */
  async *scan(prefix: string, o: RangeOptions = {}): AsyncIterable<KvRecord> {
    let after = o.after
    for (;;) {
      const page = await this.range(prefix, { ...o, after })
      yield* page.records
      if (page.next === undefined) return
      after = page.next
    }
  }

  /**
   * tick proposes a time into the log (default this host's clock). A LeaderClock does it for
   * you on the leader; call it yourself to drive expiry from a clock of your own.
   */
  async tick(now = Date.now(), o: CallOptions = {}): Promise<void> {
    await this.shard.propose(tick(now), o)
  }

  async #write(c: Parameters<typeof encodeCommand>[0], o: CallOptions): Promise<KvOutcome> {
    return decodeOutcome(await this.shard.propose(encodeCommand(c), o))
  }
}
