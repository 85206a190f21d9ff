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

/** A table as a command left it: what `recordChanges` reads of it. */
interface Read {
  get(k: never): unknown
}

/**
 * recordChanges lists the records changed in each table: `before` holds what each key the
 * command set or deleted held before its first change, `table` the table as it left it.
 */
export function recordChanges(
  tables: Array<[RecordChange['kind'], Read, ReadonlyMap<unknown, unknown>]>,
): RecordChange[] {
  const out: RecordChange[] = []
  for (const [kind, table, before] of tables) {
    for (const [id, was] of before) {
      const now = table.get(id as never)
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
