// What a failed check says: which replicas disagree, at which entry, how they got there, and
// the first difference between their states, readable without a debugger.
import type { Use } from './determinism'
import type { Result } from './replica'

/** Divergence names what differs between two replicas. */
export type DivergenceKind = 'result' | 'state' | 'query' | 'nondeterminism' | 'contract'

/** DivergenceDetails is what a CheckError carries besides its message. */
export interface DivergenceDetails {
  /** What differs. */
  kind: DivergenceKind
  /** The seed that repeats the check. */
  seed: number
  /**
   * The first entry index at which replicas differ (or at which the contract broke). For a
   * state that differs, the first index after which two replicas fed the same entries one by
   * one hold different snapshots, when the check could find it.
   */
  index: number
  /** The replicas concerned, from 1. */
  replicas: number[]
  /** Calls of clocks and random sources made while entries were applied. */
  uses: Use[]
}

/**
 * CheckError is a check that failed: its message is the report (replicas, entry, histories,
 * the first difference); its fields say the same for a program.
 */
export class CheckError extends Error implements DivergenceDetails {
  readonly kind: DivergenceKind
  readonly seed: number
  readonly index: number
  readonly replicas: number[]
  readonly uses: Use[]

  /** Makes the error from its report and details. */
  constructor(report: string, d: DivergenceDetails) {
    super(report)
    this.name = 'CheckError'
    this.kind = d.kind
    this.seed = d.seed
    this.index = d.index
    this.replicas = d.replicas
    this.uses = d.uses
  }
}

/** LIMIT bounds each quoted piece of a report. */
const LIMIT = 200

/** show prints bytes as text when they are printable UTF-8, or else as hex. */
export function show(b: Buffer | undefined): string {
  if (b === undefined) return 'absent'
  const s = b.toString('utf8')
  const control = [...s].some((c) => c.charCodeAt(0) < 9 || (c.charCodeAt(0) > 13 && c < ' '))
  const printable = Buffer.from(s).equals(b) && !control
  const text = printable ? JSON.stringify(s) : `<${b.toString('hex')}>`
  return text.length > LIMIT ? `${text.slice(0, LIMIT)}… (${b.length} bytes)` : text
}

/** showResult prints an entry's result. */
export const showResult = (r: Result): string => `{ value: ${r.value}, data: ${show(r.data)} }`

/** sameResult tells whether two results are equal. */
export const sameResult = (a: Result, b: Result): boolean =>
  a.value === b.value && a.data.equals(b.data)

/**
 * firstDifference describes where two snapshots first differ: the line, for text, or the byte
 * offset with the bytes around it.
 */
export function firstDifference(a: Buffer, b: Buffer): string {
  const text = (x: Buffer) => Buffer.from(x.toString('utf8')).equals(x)
  if (text(a) && text(b)) {
    const la = a.toString('utf8').split('\n')
    const lb = b.toString('utf8').split('\n')
    const n = Math.max(la.length, lb.length)
    for (let i = 0; i < n; i++) {
      if (la[i] === lb[i]) continue
      const line = (l: string | undefined) =>
        l === undefined ? '(none)' : show(Buffer.from(l, 'utf8'))
      return `line ${i + 1} of the snapshot:\n      ${line(la[i])}\n    vs ${line(lb[i])}`
    }
  }
  let at = 0
  while (at < a.length && at < b.length && a[at] === b[at]) at++
  const around = (x: Buffer) => `<${x.subarray(Math.max(0, at - 8), at + 8).toString('hex')}>`
  const sizes = `${a.length} vs ${b.length} bytes`
  return `byte ${at} of the snapshot (${sizes}):\n      ${around(a)}\n    vs ${around(b)}`
}

/** describeUses lists the first calls of clocks and random sources, one a line. */
export function describeUses(uses: Use[]): string[] {
  const seen = new Set<string>()
  const lines: string[] = []
  for (const u of uses) {
    const key = `${u.api} ${u.replicaId}`
    if (seen.has(key)) continue
    seen.add(key)
    const at = u.from === u.to ? `entry ${u.from}` : `entries ${u.from}–${u.to}`
    lines.push(`  ${u.api} called by update() on replica ${u.replicaId} while applying ${at}`)
    if (lines.length >= 6) break
  }
  return lines
}
