// When a shard counts as ready: the rule behind `agent.waitForShard`, as a pure function of
// the registry, the checks of its options, and the wait itself.
import { invalid, ZongziError } from '../../binding/errors'
import { retry } from '../client/retry'
import type { ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** WaitForShardOptions say what `agent.waitForShard` waits for, and how long. */
export interface WaitForShardOptions {
  /**
   * Which replicas must be active: `'all'` that the registry lists (default), `'quorum'` (a
   * majority of the voters) or `'local'` (this host's).
   */
  replicas?: 'all' | 'quorum' | 'local'
  /** Cancels the wait (ERR_ABORTED). */
  signal?: AbortSignal
  /** Milliseconds before the wait fails with ERR_TIMEOUT (default four times the timeout). */
  timeoutMs?: number
}

/** Replicas is how many of a shard's replicas must be active. */
export type Replicas = NonNullable<WaitForShardOptions['replicas']>

/** checkWaitOptions validates the options and fills in the defaults. */
export function checkWaitOptions(
  o: WaitForShardOptions,
  defaultTimeoutMs: number,
): { replicas: Replicas; timeoutMs: number } {
  if (o === null || typeof o !== 'object') throw invalid('options must be an object')
  const replicas = o.replicas ?? 'all'
  if (!['all', 'quorum', 'local'].includes(replicas))
    throw invalid("replicas must be 'all', 'quorum' or 'local'")
  const timeoutMs = o.timeoutMs ?? defaultTimeoutMs
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    throw invalid('timeoutMs must be a positive number')
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    throw invalid('signal must be an AbortSignal')
  return { replicas, timeoutMs }
}

/**
 * readyShard returns the shard's record when enough of its replicas are active in `state`,
 * and undefined while they are not; `runsLocally` tells whether this host runs an active
 * replica. A shard that is missing or being deleted throws ERR_SHARD_NOT_FOUND.
 */
export function readyShard(
  state: RegistryState,
  id: number,
  replicas: Replicas,
  runsLocally: () => boolean,
): ShardRecord | undefined {
  const sh = state.shards.get(id)
  if (!sh || sh.status === 'deleting')
    throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} not found`)
  if (replicas === 'local') return runsLocally() ? sh : undefined
  const rs = state.replicasOf(id)
  if (replicas === 'all') {
    const all = sh.status === 'active' && rs.length > 0 && rs.every((r) => r.status === 'active')
    return all ? sh : undefined
  }
  const voters = rs.filter((r) => !r.nonVoting)
  const active = voters.filter((r) => r.status === 'active').length
  return voters.length > 0 && active > voters.length / 2 ? sh : undefined
}

/** ReadinessContext is what waiting for a shard uses of the agent. */
export interface ReadinessContext {
  /** The agent's timeout (the wait's default is four times it). */
  readonly timeoutMs: number
  /** Aborted when the agent stops. */
  readonly signal: AbortSignal
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /** read runs `fn` on a linearizable snapshot of the registry. */
  read<T>(fn: (s: RegistryState) => T): Promise<T>
  /** runs tells whether this host runs an active replica of the shard. */
  runs(shardId: number): boolean
}

/** waitForShard is `agent.waitForShard` (see there). */
export async function waitForShard(
  ctx: ReadinessContext,
  id: number,
  o: WaitForShardOptions,
): Promise<ShardRecord> {
  const { replicas, timeoutMs } = checkWaitOptions(o, ctx.timeoutMs * 4)
  const signals = o.signal ? [o.signal, ctx.signal] : [ctx.signal]
  const aborted = () =>
    o.signal?.aborted
      ? new ZongziError('ERR_ABORTED', 'aborted')
      : new ZongziError('ERR_CLOSED', 'agent stopped')
  if (signals.some((x) => x.aborted)) throw aborted()
  if (!(await ctx.read((s) => s.shards.has(id))))
    throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} not found`)
  return retry(
    async () => {
      const sh = readyShard(ctx.registry(), id, replicas, () => ctx.runs(id))
      if (sh) return sh
      const what = replicas === 'local' ? 'no local replica' : `not ${replicas} replicas`
      throw new ZongziError('ERR_TIMEOUT', `shard ${id}: ${what} active in ${timeoutMs} ms`)
    },
    {
      deadline: Date.now() + timeoutMs,
      signal: AbortSignal.any(signals),
      aborted,
      retryable: (e) => e instanceof ZongziError && e.code === 'ERR_TIMEOUT',
      maxDelayMs: 25,
    },
  )
}
