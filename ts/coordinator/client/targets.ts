// Targets: which hosts a client's call goes to, and in what order.
import { ZongziError } from '../../binding/errors'
import type { RegistryState } from '../registry/state'
import type { ClientContext } from './client-context'

/** Target is a host a call may go to: this host's replica, or another host's over the bus. */
export type Target = { local: true } | { local: false; address: string }

const LOCAL: Target = Object.freeze({ local: true })

/** Remote is another host with an active replica of the shard, as a registry snapshot says. */
interface Remote {
  target: Target & { local: false }
  leader: boolean
  draining: boolean
}

/** Hosts is what one registry snapshot says of a shard's hosts (see ShardTargets). */
interface Hosts {
  state: RegistryState
  hostId: string
  /** Whether this host has an active replica of the shard on record. */
  local: boolean
  remote: Remote[]
  draining: boolean
}

/** TargetsContext is what ShardTargets needs of the agent. */
type TargetsContext = Pick<ClientContext, 'registry' | 'hostId' | 'runs' | 'catchUp'>

/**
 * ShardTargets orders the hosts that can serve a shard: this host first, then the others in
 * random order (the leader's first when `leaderFirst`, for writes with writeToLeader),
 * draining hosts after the rest, and last those whose circuit is open (`available` false).
 * What the registry says of the shard's hosts is worked out once per registry snapshot;
 * whether this host runs its replica, the order and the circuits are looked at per call.
 */
export class ShardTargets {
  readonly #agent: TargetsContext
  readonly #shardId: number
  #hosts: Hosts | undefined

  constructor(agent: TargetsContext, shardId: number) {
    this.#agent = agent
    this.#shardId = shardId
  }

  /**
   * targets is the hosts to try, in order. It throws ERR_SHARD_NOT_FOUND when the registry as
   * this host sees it has no such shard.
   */
  targets(leaderFirst: boolean, available: (address: string) => boolean): Target[] {
    const h = this.#hostsNow()
    const out: Target[] = []
    if (h.local && this.#agent.runs(this.#shardId)) out.push(LOCAL)
    const n = h.remote.length
    if (n === 0) return out
    // Spread load over the other hosts, draining ones last; with writeToLeader, the leader's
    // host goes first.
    const remote = h.remote.slice()
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      const x = remote[i]
      remote[i] = remote[j]
      remote[j] = x
    }
    if (h.draining) remote.sort((a, b) => Number(a.draining) - Number(b.draining))
    if (leaderFirst) {
      remote.sort((a, b) => Number(b.leader) - Number(a.leader))
      const first = remote[0]
      if (first?.leader) {
        remote.shift()
        out.unshift(first.target)
      }
    }
    const open: Target[] = []
    for (const x of remote) {
      if (available(x.target.address)) out.push(x.target)
      else open.push(x.target)
    }
    for (const t of open) out.push(t)
    return out
  }

  /**
   * known is targets() once this host's registry snapshot knows the shard: when it does not,
   * it catches up with the registry once (within `timeoutMs`), and only then calls the shard
   * unknown. It answers at once when the snapshot knows the shard.
   */
  known(
    leaderFirst: boolean,
    available: (address: string) => boolean,
    timeoutMs: number,
  ): Target[] | Promise<Target[]> {
    try {
      return this.targets(leaderFirst, available)
    } catch (e) {
      if (!(e instanceof ZongziError && e.code === 'ERR_SHARD_NOT_FOUND')) throw e
      const a = this.#agent
      if (!a.catchUp || a.registry().shards.has(this.#shardId)) throw e
      return a.catchUp(timeoutMs).then(() => this.targets(leaderFirst, available))
    }
  }

  /** #hostsNow is what the current registry snapshot says of the shard's hosts. */
  #hostsNow(): Hosts {
    const s = this.#agent.registry()
    const hostId = this.#agent.hostId
    const h = this.#hosts
    if (h !== undefined && h.state === s && h.hostId === hostId) return h
    const sh = s.shards.get(this.#shardId)
    if (!sh || sh.status === 'deleting')
      throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${this.#shardId} not found`)
    const next: Hosts = { state: s, hostId, local: false, remote: [], draining: false }
    for (const r of s.replicasOf(this.#shardId)) {
      if (r.status !== 'active') continue
      if (r.hostId === hostId) {
        next.local = true
        continue
      }
      // A draining host still serves its replicas until they move: last, but not left out.
      const host = s.hosts.get(r.hostId)
      if (host && (host.status === 'active' || host.status === 'draining')) {
        const draining = host.status === 'draining'
        const target = { local: false as const, address: host.apiAddress }
        next.remote.push({ target, leader: r.id === sh.leader, draining })
        next.draining ||= draining
      }
    }
    this.#hosts = next
    return next
  }
}
