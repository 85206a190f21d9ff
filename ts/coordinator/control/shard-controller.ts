// ShardController: on the registry leader, turns each shard's placement into replica records.
import { Dirty } from './changes'
import { RateLimit } from './departures'
import { type Logger, silent } from './logger'
import type { MembershipOps } from './membership-ops'
import { ERROR_TAG, place, PlacementError, type Want } from './placement'
import type { Accepted, Command, HostRecord, ReplicaRecord, ShardRecord } from '../registry/records'
import { type Move, Rebalancer } from './rebalance'
import type { RegistryState } from '../registry/state'

/**
 * ProposeCommand proposes a registry command; it resolves once the registry applied it and
 * rejects with ERR_INVALID_ARGUMENT when the registry refused it.
 */
export type ProposeCommand = (cmd: Command) => Promise<Accepted>

/** ControllerContext is what a shard controller may use besides the registry. */
export interface ControllerContext {
  /** leaving tells whether a host's replicas are to be moved off it (see departures.ts). */
  leaving(h: HostRecord | undefined): boolean
  /** alive tells whether a host can still take part (active or draining). */
  alive(h: HostRecord | undefined): boolean
  /** take spends one membership change of the cluster-wide rate, telling whether it could. */
  take(): boolean
  /** membership changes Raft memberships through the hosts that run a shard. */
  membership: MembershipOps
}

/**
 * ShardController decides which replicas shards have. It runs only on the host that leads
 * shard 0, after registry changes and periodically, one run at a time. It sees the registry
 * as an immutable snapshot and changes the cluster by proposing registry commands, which host
 * controllers then carry out, and by the membership changes of `ctx`. A rejection is logged
 * and the next run tries again. Supply your own in `AgentOptions.shardController` to replace
 * the placement rules.
 */
export interface ShardController {
  /** reconcile brings the replicas of shards towards what the controller wants. */
  reconcile(state: RegistryState, propose: ProposeCommand, ctx: ControllerContext): Promise<void>
}

/**
 * SHARD_CONCURRENCY bounds the shards a run of the default shard controller works on at once:
 * a shard's registry commands are still proposed one after another, but shards do not wait
 * for each other's commits.
 */
export const SHARD_CONCURRENCY = 64

export { ERROR_TAG }

/** ShardControllerOptions configure the default shard controller's rebalancing. */
export interface ShardControllerOptions {
  /** Moves replicas from the fullest hosts to the emptiest (default true). */
  rebalance?: boolean
  /**
   * How far a host's replicas per unit of capacity may drift from the mean before replicas
   * move (default 0.2: above 1.2 times the mean, or below the mean over 1.2, as a host that
   * just joined is).
   */
  rebalanceThreshold?: number
  /** Moves under way at once, at most (default 4). */
  maxMoves?: number
  /** onMove hears of every move that finished. */
  onMove?: (m: Move) => void
}

/**
 * DefaultShardController implements the placement grammar of {@link Placement}, both ways:
 * it adds and promotes replicas a placement asks for, and demotes or removes those it no
 * longer wants, including every replica on a host that is leaving. A shard gets one change
 * at a time, in an order that keeps its quorum: a voter on a host that is down goes first
 * when the live voters keep a quorum without it; a new replica joins non-voting, is promoted
 * once it caught up, and only then does a live replica it replaces go. Each change is recorded
 * first and carried out in Raft next; if this leader fails in between, the shard's Raft leader
 * finishes it (membership-repair.ts).
 *
 * A run looks only at the shards a registry change touched since the last run, or that it
 * could not finish then, and at every shard on a full pass (see Dirty): an idle cluster costs
 * it nothing per shard. When a host joins or the hosts' replicas drift past the threshold, it
 * rebalances: a replica of a shard at rest moves from the fullest host to the emptiest one its
 * placement allows, through the same steps (add, catch up, promote, remove), within the
 * cluster's rate of changes and a few moves at once, until no move evens the spread more.
 */
export class DefaultShardController implements ShardController {
  readonly #log: Logger
  readonly #tags: RateLimit
  readonly #o: Required<ShardControllerOptions>
  readonly #dirty = new Dirty()
  readonly #moves: Rebalancer

  /**
   * The logger receives the failures of single shards, which do not stop the others, and
   * the moves of rebalancing. `errorsPerSecond` bounds the rate of writes of the placement
   * error tag (set or cleared): a host lost on a cluster that cannot replace it makes one
   * error per shard, and they are recorded over several runs rather than all at once.
   */
  constructor(log: Logger = silent, errorsPerSecond = 10, o: ShardControllerOptions = {}) {
    this.#log = log
    this.#tags = new RateLimit(errorsPerSecond)
    this.#o = {
      rebalance: o.rebalance ?? true,
      rebalanceThreshold: o.rebalanceThreshold ?? 0.2,
      maxMoves: o.maxMoves ?? 4,
      onMove: o.onMove ?? (() => {}),
    }
    this.#moves = new Rebalancer(log, this.#o.rebalanceThreshold, this.#o.maxMoves, this.#o.onMove)
  }

  async reconcile(s: RegistryState, propose: ProposeCommand, ctx: ControllerContext) {
    // What the controller makes of a host: a change (time alone makes a missing host leaving)
    // is a host change, and every shard is looked at.
    const hostKey = (id: string) => {
      const h = s.hosts.get(id)
      return `${Number(ctx.leaving(h))}${Number(ctx.alive(h))}`
    }
    const ids = this.#dirty.take(s, hostKey)
    // Replicas per host, counting those this run adds and the moves under way: shards placed
    // from this one snapshot spread over the hosts instead of all picking the least loaded
    // ones of the snapshot.
    const load = this.#moves.projected(s)
    const work = new Set(ids)
    if (this.#o.rebalance) {
      const leaving = (h: HostRecord) => ctx.leaving(h) || !ctx.alive(h)
      for (const id of this.#moves.plan(s, leaving, load, this.#dirty.full)) work.add(id)
    }
    const shards = work.values()
    const worker = async () => {
      for (let next = shards.next(); !next.done; next = shards.next()) {
        const shard = s.shards.get(next.value)
        if (!shard || shard.id === 0) continue
        try {
          const done =
            shard.status === 'deleting'
              ? await this.#cleanUp(s, propose, ctx, shard)
              : await this.#one(propose, s, shard, ctx, load)
          if (!done) this.#dirty.again(shard.id)
        } catch (e) {
          this.#dirty.again(shard.id)
          this.#log.warn({ shardId: shard.id, error: String(e) }, 'placement of a shard failed')
        }
      }
    }
    await Promise.all(Array.from({ length: SHARD_CONCURRENCY }, worker))
  }

  /** #cleanUp deletes the records of a deleted shard's replicas on hosts that are down. */
  async #cleanUp(
    s: RegistryState,
    propose: ProposeCommand,
    ctx: ControllerContext,
    sh: ShardRecord,
  ): Promise<boolean> {
    this.#moves.drop(sh.id)
    for (const r of s.replicasOf(sh.id)) {
      if (!ctx.alive(s.hosts.get(r.hostId))) await propose({ op: 'replica.delete', id: r.id })
    }
    return true
  }

  async #one(
    propose: ProposeCommand,
    s: RegistryState,
    shard: ShardRecord,
    ctx: ControllerContext,
    load: Map<string, number>,
  ): Promise<boolean> {
    const p = shard.placement ?? {}
    if (!p.members && !p.groups && !p.cover) return true
    const current = s.replicasOf(shard.id)
    const byHost = new Map(current.map((r) => [r.hostId, r]))
    // Placed and counted in `load` before any await, so that shards worked on at once see
    // each other's new replicas (all that are missing: a shard that adds fewer this run
    // counts a little more than it has until the next run).
    const placed = this.#place(s, shard, ctx, load)
    for (const w of placed.wants ?? [])
      if (!byHost.has(w.hostId)) load.set(w.hostId, (load.get(w.hostId) ?? 0) + 1)
    // A placement error not recorded for want of rate is recorded on a later run.
    const recorded = !placed.record || this.#tags.take()
    if (placed.record && recorded) await propose(placed.record)
    const wants = placed.wants
    if (!wants) return recorded
    return (await this.#step(propose, s, shard, ctx, current, wants)) && recorded
  }

  /**
   * #step makes the shard's next change towards `wants`, if it has one to make and the
   * cluster's rate allows; false when it had to wait for the rate (to be tried again).
   */
  async #step(
    propose: ProposeCommand,
    s: RegistryState,
    shard: ShardRecord,
    ctx: ControllerContext,
    current: ReplicaRecord[],
    wants: Want[],
  ): Promise<boolean> {
    const byHost = new Map(current.map((r) => [r.hostId, r]))
    const hostOf = (r: ReplicaRecord) => s.hosts.get(r.hostId)
    const missing = wants.filter((w) => !byHost.has(w.hostId))
    if (current.length === 0) {
      if (!missing.some((w) => !w.nonVoting)) return true
      // A new shard: its voters bootstrap it together; the rest join afterwards.
      await propose({
        op: 'replicas.create',
        shardId: shard.id,
        items: missing.map((w) => ({
          hostId: w.hostId,
          nonVoting: w.nonVoting,
          initial: !w.nonVoting,
        })),
      })
      return true
    }
    const wanted = new Map(wants.map((w) => [w.hostId, w]))
    // A replica whose host left before it finished joining or leaving: finish it here.
    const stranded = current.find(
      (r) => r.status !== 'active' && !ctx.alive(hostOf(r)) && ctx.leaving(hostOf(r)),
    )
    if (stranded) {
      if (!ctx.take()) return false
      await propose({ op: 'replica.delete', id: stranded.id })
      await ctx.membership.remove(s, shard.id, stranded.id)
      return true
    }
    // One change at a time: wait while a replica joins (until it caught up) or leaves.
    if (current.some((r) => r.status !== 'active')) return true
    const voters = current.filter((r) => !r.nonVoting)
    const live = voters.filter((r) => ctx.alive(hostOf(r))).length
    // 0. A voter no longer wanted on a host that is down goes first, while the live voters
    //    are a quorum (to make the change) and stay one: were its replacement promoted first,
    //    the death of the new one's host would leave two dead voters of four, and no quorum
    //    to remove either.
    const quorum = live >= Math.floor(voters.length / 2) + 1
    const dead = voters.find(
      (r) =>
        !wanted.has(r.hostId) &&
        !ctx.alive(hostOf(r)) &&
        quorum &&
        keepsQuorum(voters.length, live, false),
    )
    if (dead) {
      if (!ctx.take()) return false
      await propose({ op: 'replica.delete', id: dead.id })
      await ctx.membership.remove(s, shard.id, dead.id)
      return true
    }
    // 1. Add one missing replica, non-voting; its host joins it and marks it active once it
    //    caught up.
    if (missing.length > 0) {
      if (!ctx.take()) return false
      const w = missing[0]
      await propose({ op: 'replica.create', shardId: shard.id, hostId: w.hostId, nonVoting: true })
      return true
    }
    // 2. Promote a caught-up replica that is wanted as a voter.
    const promote = current.find(
      (r) => r.nonVoting && wanted.get(r.hostId)?.nonVoting === false && ctx.alive(hostOf(r)),
    )
    if (promote) {
      if (!ctx.take()) return false
      await propose({ op: 'replica.update', id: promote.id, nonVoting: false })
      await ctx.membership.promote(s, shard.id, promote.id)
      return true
    }
    // 3. Demote a voter wanted as non-voting, if the voters left keep a quorum.
    const demote = voters.find((r) => wanted.get(r.hostId)?.nonVoting === true)
    if (demote && keepsQuorum(voters.length, live, ctx.alive(hostOf(demote)))) {
      if (!ctx.take()) return false
      await propose({ op: 'replica.update', id: demote.id, nonVoting: true })
      await ctx.membership.demote(s, shard.id, demote.id)
      return true
    }
    // 4. Remove a replica no longer wanted: those on hosts that are down first. A live host
    //    takes its own replica out (it is marked deleting); the rest are removed from here.
    const surplus = current
      .filter((r) => !wanted.has(r.hostId))
      .sort((a, b) => Number(ctx.alive(hostOf(a))) - Number(ctx.alive(hostOf(b))))
    const go = surplus.find(
      (r) => r.nonVoting || keepsQuorum(voters.length, live, ctx.alive(hostOf(r))),
    )
    if (!go) return true
    if (!ctx.take()) return false
    if (ctx.alive(hostOf(go))) {
      await propose({ op: 'replica.update', id: go.id, status: 'deleting' })
    } else {
      await propose({ op: 'replica.delete', id: go.id })
      await ctx.membership.remove(s, shard.id, go.id)
    }
    return true
  }

  /**
   * #place places the shard. With a placement error, `record` sets it as a tag on the shard
   * (unless already there); once placement succeeds, `record` clears the tag. `wants` is
   * undefined when the shard cannot be placed.
   */
  #place(
    s: RegistryState,
    shard: ShardRecord,
    ctx: ControllerContext,
    load: ReadonlyMap<string, number>,
  ): { wants?: Want[]; record?: Command } {
    const m = this.#moves.get(shard.id)
    if (m) {
      // A move in progress places the shard as if its old host were leaving.
      try {
        return { wants: place(s, shard, (h) => ctx.leaving(h) || h.id === m.from, load) }
      } catch (e) {
        if (!(e instanceof PlacementError)) throw e
        this.#moves.drop(shard.id)
        this.#log.info({ ...m, error: e.message }, 'rebalance: move given up')
      }
    }
    try {
      const wants = place(s, shard, (h) => ctx.leaving(h), load)
      if (shard.tags[ERROR_TAG] === undefined) return { wants }
      const { [ERROR_TAG]: _, ...rest } = shard.tags
      return { wants, record: { op: 'shard.update', id: shard.id, tags: rest } }
    } catch (e) {
      if (!(e instanceof PlacementError)) throw e
      const message = e.message.slice(0, 1000)
      if (shard.tags[ERROR_TAG] === message) return {}
      return {
        record: { op: 'shard.update', id: shard.id, tags: { ...shard.tags, [ERROR_TAG]: message } },
      }
    }
  }
}

/**
 * keepsQuorum tells whether a shard of `voters` voters, `live` of them on live hosts, keeps a
 * quorum of live voters once one voter (live or not) stops voting.
 */
export function keepsQuorum(voters: number, live: number, goneIsLive: boolean): boolean {
  const after = voters - 1
  if (after < 1) return false
  return live - (goneIsLive ? 1 : 0) >= Math.floor(after / 2) + 1
}
