// RegistryLeader: the work only the host that leads shard 0 does, once per reconcile round —
// keep its leadership on record, watch the other hosts' heartbeats, forget expired join
// tokens, keep shard 0's voters, and run the shard controller.
import type { Host } from '../../binding/host'
import type { BusClient } from '../../bus/client'
import { isAlive, isLeaving, RateLimit, type ReplacementOptions } from './departures'
import type { Liveness } from './liveness'
import type { Logger } from './logger'
import { busMembership } from './membership-ops'
import type { Accepted, Command, HostRecord } from '../registry/records'
import { reconcileRegistry } from './registry-members'
import type { RegistryState } from '../registry/state'
import { readableVersion } from '../registry/versions'
import type { ControllerContext, ShardController } from './shard-controller'

/** RegistryLeaderContext is what the registry leader's work uses of the agent. */
export interface RegistryLeaderContext {
  readonly hostId: string
  readonly timeoutMs: number
  readonly log: Logger
  readonly host: Pick<Host, 'status' | 'readIndex' | 'promote' | 'addNonVoting' | 'removeReplica'>
  readonly bus: Pick<BusClient, 'probe' | 'addReplica' | 'removeReplica'>
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  propose(cmd: Command): Promise<Accepted>
  /** ready tells whether the agent still runs. */
  ready(): boolean
  /** passed hears how long each round this host led took, in seconds (for metrics). */
  passed?(seconds: number): void
}

/** WAKE_MS is how often a host that does not lead the registry wakes a quiesced shard 0. */
const WAKE_MS = 2000

/** RegistryLeader runs the registry leader's round; rounds do not overlap. */
export class RegistryLeader {
  readonly #ctx: RegistryLeaderContext
  readonly #liveness: Liveness
  readonly #controller: ShardController
  readonly #o: Required<ReplacementOptions>
  readonly #rate: RateLimit
  #busy = false
  #woken = 0

  constructor(
    ctx: RegistryLeaderContext,
    liveness: Liveness,
    controller: ShardController,
    o: Required<ReplacementOptions>,
  ) {
    this.#ctx = ctx
    this.#liveness = liveness
    this.#controller = controller
    this.#o = o
    this.#rate = new RateLimit(o.changesPerSecond)
  }

  /** once runs a round if this host leads shard 0 and no round is running. */
  async once(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    const t0 = performance.now()
    try {
      if (await this.#round()) this.#ctx.passed?.((performance.now() - t0) / 1000)
    } catch (e) {
      this.#ctx.log.warn({ error: String(e) }, 'shard controller failed')
    } finally {
      this.#busy = false
    }
  }

  /**
   * #wake asks shard 0 for a read index, at most every WAKE_MS: a quiesced follower starts
   * no election by itself, so without work reaching it the registry would never notice that
   * its leader's host died (and with it liveness, replacement and every registry write). A
   * read is work: the replicas tick again, and quiesce again once idle.
   */
  #wake(): void {
    const now = Date.now()
    if (now - this.#woken < WAKE_MS) return
    this.#woken = now
    this.#ctx.host.readIndex(0, { timeoutMs: WAKE_MS }).catch(() => {
      // A leader that died answers no read: the replica, awake now, elects another.
    })
  }

  /** #round runs a round if this host leads shard 0, and tells whether it did. */
  async #round(): Promise<boolean> {
    const c = this.#ctx
    const st = await c.host.status(0).catch(() => undefined)
    if (!st || st.leaderId !== st.replicaId || !c.ready()) {
      this.#liveness.forget()
      if (st?.quiesced && c.ready()) this.#wake()
      return false
    }
    // The registry leader keeps its own leadership on record (the event that announced it
    // may have come before the registry existed).
    const zero = c.registry().shards.get(0)
    if (zero && (zero.leader !== st.leaderId || zero.term !== st.term)) {
      await c.propose({ op: 'shard.leader', id: 0, leader: st.leaderId, term: st.term })
    }
    this.#liveness.probe(c.registry(), c.hostId, (a) => c.bus.probe(a, { timeoutMs: 1000 }))
    const now = Date.now()
    for (const h of this.#liveness.changes(c.registry(), c.hostId, now))
      await c.propose({ op: 'host.status', id: h.id, status: h.status, now })
    // A registry made before commands named their proposers gets the rule from here on.
    if (!c.registry().access.named) await c.propose({ op: 'access.name' })
    // Once every host reads a newer registry format, the cluster writes it (docs/upgrades.md).
    const readable = readableVersion(c.registry())
    if (readable > c.registry().version)
      await c.propose({ op: 'cluster.version', version: readable })
    // Used join tokens are kept until they expire (a token admits one host), then forgotten.
    if ([...c.registry().access.used.values()].some((u) => u.expires < now))
      await c.propose({ op: 'tokens.prune', now })
    const leaving = (h: HostRecord | undefined) => isLeaving(h, Date.now(), this.#o.replaceAfterMs)
    const take = () => this.#rate.take()
    // A change of shard 0 that fails (it is tried again next round) holds no other shard up.
    await reconcileRegistry(c.registry(), c.propose, {
      leaving,
      take,
      host: c.host,
      hostId: c.hostId,
      voters: this.#o.registryVoters,
      timeoutMs: c.timeoutMs,
    }).catch((e) => c.log.warn({ error: String(e) }, 'a change of the registry members failed'))
    // A draining host that stopped answering cannot take its own replicas out any more.
    const alive = (h: HostRecord | undefined) =>
      isAlive(h) && !(h?.status === 'draining' && this.#liveness.state(h.id, Date.now()) === 'down')
    const ctx: ControllerContext = {
      leaving,
      alive,
      take,
      membership: busMembership(c.bus, c.timeoutMs),
    }
    await this.#controller.reconcile(c.registry(), c.propose, ctx)
    return true
  }
}
