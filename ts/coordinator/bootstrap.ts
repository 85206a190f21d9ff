// Bootstrap and join: how a host gets its replica of shard 0 the first time. Peers
// initialise the cluster together; any other host asks a member to add it as non-voting.
import { ZongziError } from '../binding/errors'
import type { Host } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import type { BusClient } from '../bus/client'
import { newJoinKey } from './registry/join-tokens'
import type { Logger } from './control/logger'
import type { RegistryAccess } from './registry-access'
import { firstOf, retry } from './client/retry'

/** BootstrapContext is what bootstrap and join use of the agent. */
export interface BootstrapContext {
  readonly hostId: string
  readonly apiAddress: string
  /** Bus addresses of the initial peers, sorted. */
  readonly peers: readonly string[]
  /** The join token a host that is not an initial peer shows (see Agent.createJoinToken). */
  readonly joinToken: string | undefined
  readonly tags: Record<string, string>
  readonly timeoutMs: number
  readonly log: Logger
  /** Aborted when the agent stops; the loops here end with ERR_CLOSED. */
  readonly signal: AbortSignal
  readonly host: Pick<Host, 'raftAddress' | 'startReplica' | 'setAddress'>
  readonly bus: Pick<BusClient, 'probe' | 'join'>
  readonly registry: Pick<RegistryAccess, 'propose' | 'read'>
  /** registryFactory returns the state machine of shard 0. */
  readonly registryFactory: StateMachineFactory
}

/** REJOIN is what `bootstrap` says of a peer that must join the cluster as a new host. */
export const REJOIN = 'rejoin'

/**
 * bootstrap starts shard 0 on an initial peer: every peer learns every peer's identity, then
 * all start shard 0 with the same voters and propose the same initialisation (the registry
 * applies the first only). A peer that finds the cluster initialised without it lost its data:
 * with a join token it resolves with REJOIN (it joins as a new host, and the registry marks
 * its earlier identity gone); without one it fails.
 */
export async function bootstrap(ctx: BootstrapContext): Promise<typeof REJOIN | undefined> {
  let infos: Array<{ hostId: string; raftAddress: string; apiAddress: string }>
  try {
    infos = await Promise.all(ctx.peers.map((addr) => probe(ctx, addr)))
  } catch (e) {
    if (e instanceof Rejoin) return REJOIN
    throw e
  }
  const peers = infos.map((p, i) => ({ ...p, replicaId: i + 1 }))
  const me = peers.find((p) => p.apiAddress === ctx.apiAddress)
  if (!me) throw new ZongziError('ERR_INTERNAL', 'this host is not among the peers')
  ctx.log.info({ peers: peers.length, replicaId: me.replicaId }, 'bootstrapping shard 0')
  const voters = peers.map((p) => ({ replicaId: p.replicaId, address: p.raftAddress }))
  await ctx.host.startReplica(0, me.replicaId, { mode: 'bootstrap', voters }, ctx.registryFactory)
  await ctx.registry.propose({ op: 'cluster.init', peers, joinKey: newJoinKey() })
  return undefined
}

/** Rejoin stops the probes of a peer that lost its data and has a join token. */
class Rejoin extends Error {}

/** probe asks a peer who it is, until it answers or says that this peer cannot take part. */
async function probe(
  ctx: BootstrapContext,
  addr: string,
): Promise<{ hostId: string; raftAddress: string; apiAddress: string }> {
  if (addr === ctx.apiAddress) {
    return { hostId: ctx.hostId, raftAddress: ctx.host.raftAddress, apiAddress: addr }
  }
  const fatal = ['ERR_CLUSTER_MISMATCH', 'ERR_INVALID_ARGUMENT']
  return retry(
    async () => {
      const p = await ctx.bus.probe(addr, { timeoutMs: 1000 })
      if (p.initialized && !p.initialHosts.includes(ctx.hostId)) {
        // The cluster exists and this peer was not part of it: its data is gone. Starting
        // it over with an empty log could let it vote away committed entries, so it joins
        // as a new host instead, with a join token.
        if (ctx.joinToken) throw new Rejoin()
        const lost = `this peer (host ${ctx.hostId}) has no data of it`
        const how = 'with a join token (options.joinToken, from agent.createJoinToken())'
        throw new ZongziError(
          'ERR_INVALID_ARGUMENT',
          `the cluster is already initialised and ${lost}; start it ${how} to join as a new host`,
        )
      }
      return { hostId: p.hostId, raftAddress: p.raftAddress, apiAddress: addr }
    },
    // Peers start at different times: wait for each as long as this agent runs.
    {
      ...forever(ctx),
      retryable: (e) =>
        !(e instanceof Rejoin) && !(e instanceof ZongziError && fatal.includes(e.code)),
    },
  )
}

/**
 * join asks the peers, one after another, to add this host to shard 0 as non-voting. It
 * fails at once without a join token, or when the cluster refuses the token.
 */
export async function join(ctx: BootstrapContext): Promise<void> {
  if (!ctx.joinToken) {
    const how = 'pass a token from agent.createJoinToken() as options.joinToken'
    throw new ZongziError(
      'ERR_UNAUTHENTICATED',
      `this host is not an initial peer: it needs a join token to join the cluster; ${how}`,
    )
  }
  const fatal = ['ERR_CLUSTER_MISMATCH', 'ERR_UNAUTHENTICATED']
  const refused = (e: unknown) => e instanceof ZongziError && fatal.includes(e.code)
  await retry(
    () =>
      firstOf(
        ctx.peers,
        (addr) => joinVia(ctx, addr),
        (e) => !refused(e),
        () => new ZongziError('ERR_INVALID_ARGUMENT', 'no peers to join'),
      ),
    { ...forever(ctx), retryable: (e) => !refused(e) },
  )
  // Catch up (a read index barrier) before writing to the registry through this replica.
  await retry(
    async () => {
      try {
        await ctx.registry.read(() => undefined)
      } catch (e) {
        ctx.log.debug({ error: String(e) }, 'catching up with shard 0')
        throw e
      }
    },
    { ...forever(ctx), retryable: () => true },
  )
}

/** joinVia asks one peer to add this host to shard 0, then starts the replica. */
async function joinVia(ctx: BootstrapContext, addr: string): Promise<void> {
  try {
    const res = await ctx.bus.join(
      addr,
      {
        hostId: ctx.hostId,
        raftAddress: ctx.host.raftAddress,
        apiAddress: ctx.apiAddress,
        token: ctx.joinToken ?? '',
        tags: ctx.tags,
      },
      { timeoutMs: ctx.timeoutMs },
    )
    for (const m of res.members) {
      if (m.raftAddress) ctx.host.setAddress(m.replicaId, m.raftAddress)
    }
    ctx.log.info({ replicaId: res.replicaId, via: addr }, 'joining shard 0')
    await ctx.host.startReplica(0, res.replicaId, { mode: 'join' }, ctx.registryFactory)
  } catch (e) {
    ctx.log.debug({ peer: addr, error: String(e) }, 'join attempt failed')
    throw e
  }
}

/** forever bounds a retry by the agent's life only. */
function forever(ctx: BootstrapContext) {
  return {
    signal: ctx.signal,
    aborted: () => new ZongziError('ERR_CLOSED', 'agent stopped'),
    maxDelayMs: 1000,
  }
}
