// The KV recipe's commands, queries and answers, as JSON: the one place that knows their
// encoding.
import type { Tick } from '../clock'
import { json, parse } from '../shard'

/** KvRecord is a key's value, its version (the index of the entry that wrote it) and expiry. */
export interface KvRecord {
  key: string
  value: string
  /** The log index of the entry that last wrote the key: it grows with every write. */
  version: number
  /** When the key expires, on the shard's log time (ms since the epoch); absent: never. */
  expiresAt?: number
}

/** KvWrite is a key to write in a transaction. */
export interface KvWrite {
  key: string
  value: string
  /** Milliseconds the key lives after this write, on the shard's log time. */
  ttlMs?: number
}

/** KvCompare is a condition of a transaction: `key` is at `version` (0: absent). */
export interface KvCompare {
  key: string
  version: number
}

/** KvCommand is a write to the KV state machine. */
export type KvCommand =
  | { op: 'set'; key: string; value: string; ttlMs?: number; ifVersion?: number }
  | { op: 'delete'; key: string; ifVersion?: number }
  | { op: 'cas'; key: string; expect: string | null; value: string; ttlMs?: number }
  | { op: 'txn'; compare: KvCompare[]; set: KvWrite[]; delete: string[] }
  | Tick

/** KvQuery is a read of the KV state machine. */
export type KvQuery =
  | { q: 'get'; key: string }
  | { q: 'range'; prefix: string; after?: string; limit: number }

/** KvPage is one page of a range: records in key order, and the key to continue after. */
export interface KvPage {
  records: KvRecord[]
  /** The last key of this page when more follow; pass it as `after` for the next page. */
  next?: string
}

/**
 * KvOutcome is a write's answer: `ok` with the version it wrote, or refused, with the
 * record that failed its condition (undefined: the key was absent).
 */
export type KvOutcome =
  | { ok: true; version: number }
  | { ok: false; current: KvRecord | undefined; key: string }

/** OK and REFUSED are a write's result values. */
export const OK = 1
export const REFUSED = 0

export const encodeCommand = (c: KvCommand): Buffer => json(c)
export const decodeCommand = (b: Uint8Array): KvCommand => parse<KvCommand>(b) as KvCommand
export const encodeQuery = (q: KvQuery): Buffer => json(q)
export const decodeQuery = (b: Uint8Array): KvQuery => parse<KvQuery>(b) as KvQuery

/** encodeOutcome makes a write's result from its outcome. */
export function encodeOutcome(o: KvOutcome): { value: number; data: Buffer } {
  return o.ok
    ? { value: OK, data: json({ version: o.version }) }
    : { value: REFUSED, data: json({ current: o.current ?? null, key: o.key }) }
}

/** decodeOutcome reads a write's result. */
export function decodeOutcome(r: { value: number; data: Buffer }): KvOutcome {
  const d = parse<{ version?: number; current?: KvRecord | null; key?: string }>(r.data) ?? {}
  return r.value === OK
    ? { ok: true, version: d.version ?? 0 }
    : { ok: false, current: d.current ?? undefined, key: d.key ?? '' }
}
