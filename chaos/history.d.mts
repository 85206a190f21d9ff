/** History is the chaos suite's record of operations (see history.mjs). */
export declare class History {
  invoke(ev: Record<string, unknown> & { id: string; key: string; op: string; call: number }): void
  complete(c: Record<string, unknown> & { id: string }): void
  counts(): {
    ops: number
    ok: number
    fail: number
    info: number
    unknown_seen: number
    unknown_codes: Record<string, number>
  }
  lines(): string[]
  lostWrites(finals: Record<string, string>): number
  recovery(healedAt: number, shardOf: Record<string, number>): number | null
}
