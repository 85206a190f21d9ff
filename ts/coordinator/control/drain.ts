// Drain and departures: a host hands its leaderships to other hosts and waits until the
// registry leader moved its replicas elsewhere; an operator marks a dead host for replacement
// or removal; and, on every host, the leader balance.
import { invalid, ZongziError } from '../../binding/errors'
import type { Host } from '../../binding/host'
import { ERROR_TAG } from './shard-controller'
import { leadersByHost, leadTarget, nextTransfers, type Transfer } from './leader-balance'
import type { Logger } from './logger'
import type { Accepted, Command } from '../registry/records'
import type { RegistryState } from '../registry/state'
import { readMayRetry, retry } from '../client/retry'

/** DrainContext is what draining and balancing use of the agent. */
export interface DrainContext {
  readonly hostId: string
  readonly log: Logger
  readonly host: Pick<Host, 'status' | 'transferLeader'>
  /** answers tells whether a host answers a bus probe within `timeoutMs`. */
  answers(hostId: string, timeoutMs: number): Promise<boolean>
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /** read runs `fn` on a linearizable snapshot of the registry. */
  read<T>(fn: (s: RegistryState) => T): Promise<T>
  propose(cmd: Command): Promise<Accepted>
}

/** DrainOptions bound a drain. */
export interface DrainOptions {
  /** Milliseconds to wait for the replicas to move (default 120,000). */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * handOver makes the leadership transfers that `nextTransfers` asks of this host (at most
 * `max`, at once), each if this host leads that shard now, the target votes in it, and the
 * target's host answers (a leader handing over to a replica that cannot take over stops
 * taking writes for a while); it tells how many it asked.
 */
export async function handOver(ctx: DrainContext, s = ctx.registry(), max = 1): Promise<number> {
  const answers = new Map<string, Promise<boolean>>()
  const one = async (t: Transfer) => {
    const st = await ctx.host.status(t.shardId).catch(() => undefined)
    if (!st || st.leaderId !== st.replicaId) return false
    // A voter on record may not vote in Raft yet (it is recorded first): a transfer to a
    // non-voter stalls the shard's writes until the transfer times out.
    if (!st.membership.voters.includes(t.replicaId)) return false
    const target = s.replicas.get(t.replicaId)?.hostId
    if (!target) return false
    if (!answers.has(target)) answers.set(target, ctx.answers(target, 250))
    if (!(await answers.get(target))) return false
    await ctx.host.transferLeader(t.shardId, t.replicaId)
    ctx.log.info({ ...t }, 'leadership handed over')
    return true
  }
  const done = await Promise.all(nextTransfers(s, ctx.hostId, max).map(one))
  return done.filter(Boolean).length
}

/** BALANCE_RECHECK_MS is how often the leader balance looks again at an unchanged registry. */
export const BALANCE_RECHECK_MS = 30_000

/** BALANCE_BURST bounds the leaderships a host far above the mean hands over in one run. */
export const BALANCE_BURST = 8

/**
 * LeaderBalance hands over leaderships on this host while it leads at least two shards more
 * than another host that could lead them: one per `everyMs`, or, while it leads more than the
 * mean (leadTarget), up to its excess (at most BALANCE_BURST) at every run, so a host that
 * joined, or leaders that piled up at the first elections, even out soon. It works from
 * registry changes: once it found nothing to hand over in a state, it looks at that state
 * again only every BALANCE_RECHECK_MS (an idle host spends nothing on it in between).
 */
export class LeaderBalance {
  readonly #everyMs: number
  #last = 0
  #busy = false
  /** The state in which nothing was handed over, and when to look at it again. */
  #idle: RegistryState | undefined
  #recheckAt = 0

  constructor(everyMs: number) {
    this.#everyMs = everyMs
  }

  async once(ctx: DrainContext): Promise<void> {
    const now = Date.now()
    const s = ctx.registry()
    if (this.#busy || (s === this.#idle && now < this.#recheckAt)) return
    const excess = (leadersByHost(s).get(ctx.hostId) ?? 0) - leadTarget(s)
    if (excess <= 0 && now - this.#last < this.#everyMs) return
    this.#busy = true
    try {
      if (await handOver(ctx, s, Math.min(BALANCE_BURST, Math.max(1, excess)))) this.#last = now
      else {
        this.#idle = s
        this.#recheckAt = now + BALANCE_RECHECK_MS
      }
    } catch (e) {
      ctx.log.debug({ error: String(e) }, 'leadership not handed over')
    } finally {
      this.#busy = false
    }
  }
}

/**
 * remaining lists what keeps a host from being drained: its replicas of shards (with the
 * placement error that keeps each from moving, if any), and a vote in the registry.
 */
export function remaining(s: RegistryState, hostId: string): string[] {
  return s.replicasOn(hostId).flatMap((r) => {
    if (r.shardId === 0) return r.nonVoting ? [] : ['a vote in the registry (shard 0)']
    const why = s.shards.get(r.shardId)?.tags[ERROR_TAG]
    return [`a replica of shard ${r.shardId}${why ? ` (${why})` : ''}`]
  })
}

/**
 * drainHost marks this host draining, so that the registry leader moves its replicas to other
 * hosts and gives it no new ones, and hands its leaderships over meanwhile. It resolves once
 * the registry lists no replica on it but a non-voting one of shard 0; ERR_TIMEOUT says what
 * is left.
 */
export async function drainHost(ctx: DrainContext, o: DrainOptions = {}): Promise<void> {
  if (o === null || typeof o !== 'object') throw invalid('drain options must be an object')
  const timeoutMs = o.timeoutMs ?? 120_000
  if (!(Number.isSafeInteger(timeoutMs) && timeoutMs > 0))
    throw invalid('timeoutMs must be a positive whole number')
  const me = ctx.hostId
  if ((await ctx.read((s) => s.hosts.get(me)?.status)) !== 'draining')
    await ctx.propose({ op: 'host.status', id: me, status: 'draining', now: Date.now() })
  ctx.log.info({}, 'draining')
  await retry(
    async () => {
      await handOver(ctx).catch(() => 0)
      const [status, left] = await ctx.read((s) => [s.hosts.get(me)?.status, remaining(s, me)])
      if (status !== 'draining') throw new ZongziError('ERR_ABORTED', `drain ended: ${status}`)
      if (left.length === 0) return
      throw new ZongziError('ERR_TIMEOUT', `not drained in ${timeoutMs} ms: ${left.join('; ')}`)
    },
    {
      deadline: Date.now() + timeoutMs,
      signal: o.signal,
      aborted: () => new ZongziError('ERR_ABORTED', 'drain aborted'),
      retryable: (e) => (e instanceof ZongziError && e.code === 'ERR_TIMEOUT') || readMayRetry(e),
      maxDelayMs: 250,
    },
  )
  ctx.log.info({}, 'drained')
}

/** undrainHost makes a draining host active again (nothing, if it is not draining). */
export async function undrainHost(ctx: DrainContext): Promise<void> {
  const status = await ctx.read((s) => s.hosts.get(ctx.hostId)?.status)
  if (status !== 'draining') return
  await ctx.propose({ op: 'host.status', id: ctx.hostId, status: 'active', now: Date.now() })
}

/**
 * markDeparted marks another host `missing` to be replaced at once, or `gone`. Only a host the
 * registry leader's heartbeats already miss, and that this host cannot reach either: a host
 * that is up is drained instead.
 */
export async function markDeparted(
  ctx: DrainContext,
  hostId: string,
  status: 'missing' | 'gone',
): Promise<void> {
  if (typeof hostId !== 'string' || hostId === '') throw invalid('hostId is required')
  if (hostId === ctx.hostId) throw invalid('a host cannot remove or replace itself; drain it')
  const h = await ctx.read((s) => s.hosts.get(hostId))
  if (!h) throw invalid(`host ${hostId} is not a member of the cluster`)
  if (h.status === 'gone') return
  if (h.status === 'active' || (await ctx.answers(hostId, 1000))) {
    const how = 'drain it (agent.drain() there), or stop it and wait until it is missing'
    throw invalid(`host ${hostId} is up (${h.status}); ${how}`)
  }
  // `now` 0: to be replaced at once, whatever replaceAfterMs says (see isLeaving). `from`: the
  // registry changes nothing if the host came back (the registry leader heard it) meanwhile.
  await ctx.propose({ op: 'host.status', id: hostId, status, now: 0, from: h.status })
}

/**
 * transferLeaderTo asks the shard's leader to hand leadership to the voting replica of the
 * shard on host `hostId`, through this host's replica; it resolves once asked.
 */
export async function transferLeaderTo(
  s: RegistryState,
  host: Pick<Host, 'transferLeader'>,
  shardId: number,
  hostId: string,
): Promise<void> {
  const target = s.replicasOf(shardId).find((r) => r.hostId === hostId && !r.nonVoting)
  if (!target) throw invalid(`host ${hostId} has no voting replica of shard ${shardId}`)
  await host.transferLeader(shardId, target.id)
}
