// The election recipe's commands, queries and answers, as JSON: the one place that knows
// their encoding.
import type { Tick } from '../clock'
import { json, parse } from '../shard'

/** Leader is an election's winner: who, what it announces, and its term. */
export interface Leader {
  election: string
  candidate: string
  /** What the leader announces (its address, say); `proclaim` changes it. */
  value: string
  /** The log index of the entry that elected it: each new leader's is larger. */
  term: number
}

/** Candidate is a campaigner waiting its turn, with when its lease ends. */
export interface Candidate {
  candidate: string
  value: string
  expiresAt: number
}

/** ElectionCommand is a write to the election state machine. */
export type ElectionCommand =
  | { op: 'campaign'; election: string; candidate: string; value: string; leaseMs: number }
  | { op: 'keepalive'; election: string; candidate: string; leaseMs: number }
  | { op: 'resign'; election: string; candidate: string }
  | { op: 'proclaim'; election: string; candidate: string; term: number; value: string }
  | Tick

/** ElectionQuery reads an election's leader. */
export interface ElectionQuery {
  election: string
}

/**
 * Standing is a candidate's answer: whether it leads, the leader now, and whether it still
 * campaigns (its lease is alive).
 */
export interface Standing {
  leads: boolean
  campaigning: boolean
  leader?: Leader
}

export const encodeCommand = (c: ElectionCommand): Buffer => json(c)
export const decodeCommand = (b: Uint8Array): ElectionCommand =>
  parse<ElectionCommand>(b) as ElectionCommand
export const encodeQuery = (q: ElectionQuery): Buffer => json(q)
export const decodeQuery = (b: Uint8Array): ElectionQuery =>
  parse<ElectionQuery>(b) as ElectionQuery

/** encodeStanding is a command's result: 1 while the candidate campaigns or leads, else 0. */
export const encodeStanding = (s: Standing) => ({ value: s.campaigning ? 1 : 0, data: json(s) })
export const decodeStanding = (r: { data: Buffer }): Standing =>
  parse<Standing>(r.data) ?? { leads: false, campaigning: false }
export const encodeLeader = (l: Leader | undefined): Buffer | undefined => l && json(l)
export const decodeLeader = (b: Uint8Array | undefined): Leader | undefined => parse<Leader>(b)
