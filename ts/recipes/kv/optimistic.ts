// The optimistic write lock: read some keys with their versions, compute new values without
// holding anything, and write them only if none of those keys changed meanwhile; if one did,
// read again and retry. No lock is held, so a client that dies mid-way blocks nobody.
import type { CallOptions } from '../shard'
import type { KvClient } from './client'
import type { KvRecord, KvWrite } from './codec'

/** Changes are what an optimistic update writes: new values by key, and keys to delete. */
export interface Changes {
  set?: Record<string, string>
  delete?: string[]
  /** TTL of the keys written, on the shard's log time. */
  ttlMs?: number
}

/** OptimisticOptions bound an optimistic update. */
export interface OptimisticOptions extends CallOptions {
  /** Attempts before giving up with a ConflictError (default 10). */
  attempts?: number
}

/** ConflictError is an optimistic update that met a conflict at every attempt. */
export class ConflictError extends Error {
  /** Makes the error for `keys` after `attempts`. */
  constructor(
    readonly keys: string[],
    readonly attempts: number,
  ) {
    super(
      `optimistic update of ${keys.join(', ')}: changed by others at each of ${attempts} attempts`,
    )
    this.name = 'ConflictError'
  }
}

/** Updated is a successful optimistic update: the version it wrote and the attempts taken. */
export interface Updated {
  version: number
  attempts: number
}

/**
 * optimisticUpdate reads `keys`, calls `compute` with their records (undefined when absent)
 * and writes what it returns in one transaction that holds only if every key is still at the
 * version read. On a conflict it starts again, up to `attempts` times; then it rejects with
 * a ConflictError. `compute` may run several times and must not act outside its return value.
 */
export async function optimisticUpdate(
  kv: KvClient,
  keys: string[],
  compute: (current: Record<string, KvRecord | undefined>) => Changes,
  o: OptimisticOptions = {},
): Promise<Updated> {
  const attempts = o.attempts ?? 10
  const { attempts: _, ...call } = o
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const current: Record<string, KvRecord | undefined> = {}
    for (const k of keys) current[k] = await kv.get(k, call)
    const changes = compute(current)
    const set: KvWrite[] = Object.entries(changes.set ?? {}).map(([key, value]) => ({
      key,
      value,
      ttlMs: changes.ttlMs,
    }))
    const outcome = await kv.transaction(
      {
        compare: keys.map((key) => ({ key, version: current[key]?.version ?? 0 })),
        set,
        delete: changes.delete ?? [],
      },
      call,
    )
    if (outcome.ok) return { version: outcome.version, attempts: attempt }
  }
  throw new ConflictError(keys, attempts)
}
