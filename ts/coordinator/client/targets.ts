// Targets: which hosts a client's call goes to, and in what order.
import { ZongziError } from '../../binding/errors'
import type { ClientContext } from './client-context'

/** Target is a host a call may go to: this host's replica, or another host's over the bus. */
export type Target = { local: true } | { local: false; address: string }

/**
 * targets orders the hosts that can serve a shard: this host first, then the others in
 * random order (the leader's first when `leaderFirst`, for writes with writeToLeader),
 * draining hosts after the rest, and last those whose circuit is open (`available` false).
 * It throws ERR_SHARD_NOT_FOUND when the registry as this host sees it has no such shard.
 */
export function targets(
  agent: Pick<ClientContext, 'registry' | 'hostId' | 'runs'>,
  shardId: number,
  leaderFirst: boolean,
  available: (address: string) => boolean,
): Target[] {
  const s = agent.registry()
  const sh = s.shards.get(shardId)
  if (!sh || sh.status === 'deleting')
    throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${shardId} not found`)
  const out: Target[] = []
  const remote: Array<{ address: string; leader: boolean; draining: boolean }> = []
  for (const r of s.replicasOf(shardId)) {
    if (r.status !== 'active') continue
    if (r.hostId === agent.hostId) {
      if (agent.runs(shardId)) out.push({ local: true })
      continue
    }
    // A draining host still serves its replicas until they move: last, but not left out.
    const h = s.hosts.get(r.hostId)
    if (h && (h.status === 'active' || h.status === 'draining')) {
      const draining = h.status === 'draining'
      remote.push({ address: h.apiAddress, leader: r.id === sh.leader, draining })
    }
  }
  // Spread load over the other hosts, draining ones last; with writeToLeader, the leader's
  // host goes first.
  remote.sort(() => Math.random() - 0.5)
  remote.sort((a, b) => Number(a.draining) - Number(b.draining))
  if (leaderFirst) {
    remote.sort((a, b) => Number(b.leader) - Number(a.leader))
    const first = remote[0]
    if (first?.leader) {
      remote.shift()
      out.unshift({ local: false, address: first.address })
    }
  }
  const open: Target[] = []
  for (const x of remote) {
    const t = { local: false as const, address: x.address }
    if (available(x.address)) out.push(t)
    else open.push(t)
  }
  return [...out, ...open]
}
