// The agent's side of the message bus: what other hosts may ask of this one. Each handler
// serves from this host's replicas only (no further forwarding), so a request cannot loop.
import { invalid, ZongziError } from '../binding/errors'
import type { Host } from '../binding/host'
import type { BusHandlers } from '../bus/server'
import type { Caller, JoinRequest, ReplicaChange, ReplicaRemoval } from '../bus/service'
import { CatchUp } from './catch-up'
import { type Accepted, type Command, createdId } from './registry/records'
import { runCommand } from './registry/commands'
import type { RegistryState } from './registry/state'
import { Invalid, Writer } from './registry/writer'

/** HandlerContext is what the bus handlers use of the agent. */
export interface HandlerContext {
  readonly clusterName: string
  readonly hostId: string
  readonly apiAddress: string
  readonly timeoutMs: number
  /** The bus speaks mutual TLS: every caller shows a certificate. */
  readonly tls: boolean
  readonly host: Pick<
    Host,
    | 'raftAddress'
    | 'addNonVoting'
    | 'addReplica'
    | 'removeReplica'
    | 'propose'
    | 'registerSession'
    | 'unregisterSession'
    | 'commit'
    | 'read'
    | 'readIndex'
    | 'stateMachine'
  >
  /** ready tells whether the agent has started and not begun to stop. */
  ready(): boolean
  /** runs tells whether this host runs an active replica of the shard. */
  runs(shardId: number): boolean
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /** catchUp resolves once registry() holds every change committed before the call. */
  catchUp(timeoutMs: number): Promise<void>
  propose(cmd: Command): Promise<Accepted>
}

/** CATCH_UP_MS is how often at most the handlers catch up with the registry for refusals. */
const CATCH_UP_MS = 100

/**
 * admit resolves when `caller` is a host of the registry (not gone) and, over TLS, shows the
 * certificate the registry has for it (or the one it is switching to). A caller refused on
 * this host's snapshot is looked at again after catching up with the registry (a host that
 * has just joined is known to its own replica first); `catchUp` bounds how often that reads.
 */
async function admit(agent: HandlerContext, catchUp: CatchUp, caller: Caller): Promise<void> {
  const why = (s: RegistryState): string | undefined => {
    if (!caller.hostId) return 'the caller names no host'
    if (agent.tls && caller.certificate === undefined)
      return 'the caller showed no certificate fingerprint'
    const h = s.hosts.get(caller.hostId)
    if (!h || h.status === 'gone') return `host ${caller.hostId} is not a member of the cluster`
    const known = [h.certificate, h.nextCertificate]
    if (caller.certificate !== undefined && !known.includes(caller.certificate))
      return `host ${caller.hostId} called with a certificate that is not the one on record`
    return undefined
  }
  const mark = catchUp.mark()
  if (why(agent.registry()) === undefined) return
  if (caller.hostId && (caller.certificate !== undefined || !agent.tls)) await catchUp.after(mark)
  const reason = why(agent.registry())
  if (reason !== undefined) throw new ZongziError('ERR_UNAUTHENTICATED', reason)
}

/** busHandlers answers bus requests from what `agent` offers. */
export function busHandlers(agent: HandlerContext): BusHandlers {
  // Nobody writes raw commands into the registry over the bus: one `shard.delete` there would
  // make every host drop a shard's data. Agents change the registry through their own replica.
  const raw = (shardId: number) => {
    if (shardId === 0) throw invalid('shard 0 (the registry) takes no raw commands over the bus')
  }
  // Shard 0's membership changes only through its own leader's registry work and joins.
  const member = (shardId: number) => {
    if (shardId === 0) throw invalid('shard 0 (the registry) takes no membership changes')
  }
  const catchUp = new CatchUp(() => agent.catchUp(agent.timeoutMs), CATCH_UP_MS)
  const local = (shardId: number) => {
    if (!agent.runs(shardId))
      throw new ZongziError(
        'ERR_SHARD_NOT_FOUND',
        `shard ${shardId} has no active replica on this host`,
      )
  }
  return {
    admit: (caller) => admit(agent, catchUp, caller),
    probe: () => ({
      cluster: agent.clusterName,
      hostId: agent.hostId,
      raftAddress: agent.host.raftAddress,
      apiAddress: agent.apiAddress,
      initialized: agent.registry().shards.has(0),
      initialHosts: agent
        .registry()
        .replicasOf(0)
        .filter((r) => r.initial)
        .map((r) => r.hostId),
    }),
    join: (req: JoinRequest, caller: Caller) => onJoin(agent, catchUp, req, caller),
    addReplica: async (req: ReplicaChange) => {
      member(req.shardId)
      local(req.shardId)
      await onRecord(agent, catchUp, req)
      if (req.nonVoting)
        await agent.host.addNonVoting(req.shardId, req.replicaId, req.raftAddress, {
          timeoutMs: agent.timeoutMs,
        })
      else
        await agent.host.addReplica(req.shardId, req.replicaId, req.raftAddress, {
          timeoutMs: agent.timeoutMs,
        })
    },
    removeReplica: async (req: ReplicaRemoval) => {
      member(req.shardId)
      local(req.shardId)
      await onLeaving(agent, catchUp, req)
      await agent.host.removeReplica(req.shardId, req.replicaId, { timeoutMs: agent.timeoutMs })
    },
    propose: async (shardId, data, timeoutMs, session) => {
      raw(shardId)
      local(shardId)
      return agent.host.propose(shardId, data, {
        timeoutMs: timeoutMs || agent.timeoutMs,
        session,
      })
    },
    session: async (shardId, clientId, register, timeoutMs) => {
      raw(shardId)
      local(shardId)
      const o = { timeoutMs: timeoutMs || agent.timeoutMs }
      if (register) await agent.host.registerSession(shardId, clientId, o)
      else await agent.host.unregisterSession(shardId, clientId, o)
    },
    commit: async (shardId, data, timeoutMs) => {
      raw(shardId)
      local(shardId)
      return agent.host.commit(shardId, data, { timeoutMs: timeoutMs || agent.timeoutMs })
    },
    read: async (shardId, query, stale, timeoutMs) => {
      local(shardId)
      return agent.host.read(shardId, query, { stale, timeoutMs: timeoutMs || agent.timeoutMs })
    },
    index: async (shardId, timeoutMs) => {
      local(shardId)
      return agent.host.readIndex(shardId, { timeoutMs: timeoutMs || agent.timeoutMs })
    },
    watch: (shardId, query, signal) => {
      local(shardId)
      const sm = agent.host.stateMachine(shardId)
      if (!sm?.watch) throw invalid(`the state machine of shard ${shardId} has no watch`)
      return sm.watch(query, signal)
    },
    stream: (shardId, input, signal) => {
      local(shardId)
      const sm = agent.host.stateMachine(shardId)
      if (!sm?.stream) throw invalid(`the state machine of shard ${shardId} has no stream`)
      return sm.stream(input, signal)
    },
  }
}

/**
 * onJoin adds a new host to shard 0 as a non-voting member, if the registry accepts its join
 * token (idempotent per host: a retry from the same Raft address and certificate, `caller`'s).
 * The join is first checked against this host's registry (and, if refused there, again after
 * catching up): a bad token, a known host id or a replica of the registry already held is
 * refused before anything is proposed.
 */
async function onJoin(
  agent: HandlerContext,
  catchUp: CatchUp,
  req: JoinRequest,
  caller: Caller,
): Promise<{ replicaId: number; members: Array<{ replicaId: number; raftAddress: string }> }> {
  if (!agent.ready()) throw new ZongziError('ERR_UNAVAILABLE', 'this host is not ready')
  if (!req.hostId || !req.raftAddress) throw invalid('join needs a host id and a raft address')
  const cmd: Command = {
    op: 'host.join',
    hostId: req.hostId,
    token: req.token,
    now: Date.now(),
    tags: req.tags,
    raftAddress: req.raftAddress,
    ...(caller.certificate === undefined ? {} : { certificate: caller.certificate }),
  }
  const mark = catchUp.mark()
  if (refusal(agent.registry(), cmd, agent.hostId) !== undefined) await catchUp.after(mark)
  const why = refusal(agent.registry(), { ...cmd, now: Date.now() }, agent.hostId)
  if (why) throw new ZongziError(why.code ?? 'ERR_INVALID_ARGUMENT', why.message)
  const out = await agent.propose(cmd)
  const replicaId = createdId(out)
  const s = agent.registry()
  // The registry gives a join only a non-voting replica; never move a voter to a new address.
  if (s.replicas.get(replicaId)?.nonVoting !== true)
    throw new ZongziError('ERR_UNAUTHENTICATED', `replica ${replicaId} is not a joining replica`)
  await agent.host.addNonVoting(0, replicaId, req.raftAddress, { timeoutMs: agent.timeoutMs })
  const members = s.replicasOf(0).flatMap((r) => {
    const h = s.hosts.get(r.hostId)
    return h ? [{ replicaId: r.id, raftAddress: h.raftAddress }] : []
  })
  return { replicaId, members }
}

/**
 * onRecord resolves when the registry lists the replica a membership change adds (or
 * promotes, or demotes) in that shard, on a host whose Raft address is the one given: a
 * change never moves a member to an address not on record. It catches up once if not.
 */
async function onRecord(agent: HandlerContext, catchUp: CatchUp, req: ReplicaChange) {
  const fits = (s: RegistryState) => {
    const r = s.replicas.get(req.replicaId)
    return r?.shardId === req.shardId && s.hosts.get(r.hostId)?.raftAddress === req.raftAddress
  }
  const mark = catchUp.mark()
  if (fits(agent.registry())) return
  await catchUp.after(mark)
  if (!fits(agent.registry()))
    throw invalid(
      `replica ${req.replicaId} of shard ${req.shardId} is not on record at ${req.raftAddress}`,
    )
}

/**
 * onLeaving resolves when the registry no longer lists the replica a removal names in that
 * shard, or has it being deleted: a member never takes a replica the registry keeps out of
 * its shard. It catches up once if not.
 */
async function onLeaving(agent: HandlerContext, catchUp: CatchUp, req: ReplicaRemoval) {
  const leaving = (s: RegistryState) => {
    const r = s.replicas.get(req.replicaId)
    return r?.shardId !== req.shardId || r.status === 'deleting'
  }
  const mark = catchUp.mark()
  if (leaving(agent.registry())) return
  await catchUp.after(mark)
  if (!leaving(agent.registry()))
    throw invalid(
      `replica ${req.replicaId} of shard ${req.shardId} is on record and not being deleted`,
    )
}

/** refusal is why the registry `s` would refuse `cmd` from `by`, if it would. */
function refusal(s: RegistryState, cmd: Command, by: string): Invalid | undefined {
  try {
    runCommand(new Writer(s, s.index), { ...cmd, by })
    return undefined
  } catch (e) {
    if (e instanceof Invalid) return e
    throw e
  }
}
