// Registry changes: what one command changed in the registry's tables, as the change stream
// (`agent.changes()`) and the audit trail show it.
import type { HostRecord, ReplicaRecord, ShardRecord } from './records'

/**
 * RecordChange is one record a command changed: its new value, or `null` once removed. A
 * record whose only change is its `updated` index (a shard's host changed, say) is left out.
 */
export type RecordChange =
  | { kind: 'host'; id: string; record: HostRecord | null }
  | { kind: 'shard'; id: number; record: ShardRecord | null }
  | { kind: 'replica'; id: number; record: ReplicaRecord | null }

/**
 * RegistryChange is a command the registry applied and what it changed: the log `index` it
 * applied at, its `op`, the host that proposed it (`by`, absent on commands that name none)
 * and the command itself less its secrets (a join token, a join key). A command that changed
 * no record and not the cluster's access (a create of a name that exists, say) is not one.
 */
export interface RegistryChange {
  index: number
  op: string
  by?: string
  command: Record<string, unknown>
  changes: RecordChange[]
}

/** The fields of commands that carry secrets: the change stream shows them as `'<redacted>'`. */
const SECRETS = new Set(['token', 'joinKey'])

/** commandOf is the command a change shows: its fields, the secret ones redacted. */
export function commandOf(cmd: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(cmd)) out[k] = SECRETS.has(k) ? '<redacted>' : v
  return out
}

/** A journal entry: the key a table set or deleted, whether it was there, its value then. */
type Logged = [unknown, boolean, unknown]

/**
 * recordChanges lists the records changed in each table from its journal of the command
 * (what it set or deleted, with what was there before) and the table as the command left it.
 */
export function recordChanges(
  tables: Array<
    [RecordChange['kind'], ReadonlyMap<unknown, unknown> | undefined, Logged[] | undefined]
  >,
): RecordChange[] {
  const out: RecordChange[] = []
  for (const [kind, table, log] of tables) {
    if (!table || !log) continue
    const before = new Map<unknown, unknown>()
    for (const [k, had, v] of log) if (!before.has(k)) before.set(k, had ? v : undefined)
    for (const [id, was] of before) {
      // Map.prototype.get: the table may still have its journaling methods.
      const now = Map.prototype.get.call(table, id)
      if (sameRecord(was, now)) continue
      out.push({ kind, id, record: now ?? null } as RecordChange)
    }
  }
  return out
}

/** sameRecord tells whether two versions of a record differ in nothing but `updated`. */
function sameRecord(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (!a || !b) return false
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (k === 'updated' || x[k] === y[k]) continue
    if (typeof x[k] !== 'object' || JSON.stringify(x[k]) !== JSON.stringify(y[k])) return false
  }
  return true
}
