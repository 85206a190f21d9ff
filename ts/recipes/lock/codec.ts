// The lock recipe's commands, queries and answers, as JSON: the one place that knows their
// encoding.
import type { Tick } from '../clock'
import { json, parse } from '../shard'

/** Holder is who holds a lock, with its fencing token and when its lease ends. */
export interface Holder {
  name: string
  owner: string
  /**
   * The fencing token: the log index of the entry that granted the lock. Every grant of a
   * lock has a larger token than the grants before it.
   */
  token: number
  /** When the lease ends, on the shard's log time (ms since the epoch). */
  expiresAt: number
}

/** LockCommand is a write to the lock state machine. */
export type LockCommand =
  | { op: 'acquire'; name: string; owner: string; leaseMs: number }
  | { op: 'renew'; name: string; owner: string; token: number; leaseMs: number }
  | { op: 'release'; name: string; owner: string; token: number }
  | Tick

/** LockQuery reads who holds a lock. */
export interface LockQuery {
  name: string
}

/** GRANTED (acquired, renewed, released) and DENIED are a command's result values. */
export const GRANTED = 1
export const DENIED = 0

export const encodeCommand = (c: LockCommand): Buffer => json(c)
export const decodeCommand = (b: Uint8Array): LockCommand => parse<LockCommand>(b) as LockCommand
export const encodeQuery = (q: LockQuery): Buffer => json(q)
export const decodeQuery = (b: Uint8Array): LockQuery => parse<LockQuery>(b) as LockQuery

/** encodeAnswer is a command's result: granted or not, and the holder now (if any). */
export const encodeAnswer = (granted: boolean, holder: Holder | undefined) => ({
  value: granted ? GRANTED : DENIED,
  data: json(holder ?? null),
})

/** decodeAnswer reads a command's result. */
export const decodeAnswer = (r: { value: number; data: Buffer }) => ({
  granted: r.value === GRANTED,
  holder: parse<Holder | null>(r.data) ?? undefined,
})
