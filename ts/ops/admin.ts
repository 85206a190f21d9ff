// Admin: the operator's actions a host performs when asked over the bus (its Admin call, what
// `zongzi shard|host|leader` sends), each with the agent's own calls: the caller is admitted as
// for any bus call, and the agent then checks the action as it checks its API's calls.
import { invalid, ZongziError } from '../binding/errors'
import type { ReplicaStatus } from '../binding/host'
import type { Placement, ShardRecord } from '../coordinator/registry/records'
import type { RegistryState } from '../coordinator/registry/state'

/**
 * AdminAction is what an operator asks of a host over the bus. `leader.transfer` makes the
 * called host the shard's leader, and waits until it is.
 */
export type AdminAction =
  | {
      op: 'shard.create'
      type: string
      name: string
      tags?: Record<string, string>
      placement?: Placement
    }
  | { op: 'shard.delete'; shardId: number }
  | { op: 'host.remove' | 'host.replace'; hostId: string }
  | { op: 'leader.transfer'; shardId: number }

/** CallOptions bound an agent call (CallOptions, less the signal). */
interface CallOptions {
  timeoutMs?: number
}

/** ShardOptions describe a shard to create (the Agent's ShardOptions, as far as used here). */
interface ShardOptions extends CallOptions {
  name?: string
  tags?: Record<string, string>
  placement?: Placement
}

/** AdminAgent is the part of the Agent's API the actions use. */
export interface AdminAgent {
  readonly hostId: string
  createShard(type: string, o?: ShardOptions): Promise<ShardRecord>
  deleteShard(id: number, o?: CallOptions): Promise<void>
  removeHost(hostId: string, o?: CallOptions): Promise<void>
  replaceHost(hostId: string, o?: CallOptions): Promise<void>
  transferLeader(shardId: number, hostId: string): Promise<void>
  replicaStatus(shardId: number): Promise<ReplicaStatus>
  state<T>(fn: (s: RegistryState) => T, o?: CallOptions): Promise<T>
}

/** RETRY_TRANSFER_MS is how long a leader transfer waits before asking again. */
const RETRY_TRANSFER_MS = 1_000

/**
 * runAdmin performs `action` (JSON of an AdminAction) on `agent` within `timeoutMs` (the
 * agent's default when 0) and resolves with its result, as JSON.
 */
export async function runAdmin(
  agent: AdminAgent,
  action: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  let a: AdminAction
  try {
    a = JSON.parse(Buffer.from(action).toString())
  } catch {
    throw invalid('the admin action is not JSON')
  }
  if (a === null || typeof a !== 'object') throw invalid('the admin action must be an object')
  const o = timeoutMs > 0 ? { timeoutMs } : {}
  const json = (x: unknown) => Buffer.from(JSON.stringify(x ?? null))
  switch (a.op) {
    case 'shard.create': {
      if (typeof a.name !== 'string' || a.name === '') throw invalid('a shard name is required')
      const { type, name, tags, placement } = a
      return json(await agent.createShard(type, { name, tags, placement, ...o }))
    }
    case 'shard.delete':
      return json(await agent.deleteShard(a.shardId, o))
    case 'host.remove':
      return json(await agent.removeHost(a.hostId, o))
    case 'host.replace':
      return json(await agent.replaceHost(a.hostId, o))
    case 'leader.transfer':
      return json(await lead(agent, a.shardId, timeoutMs || 10_000))
    default:
      throw invalid(`unknown admin action ${JSON.stringify((a as { op: unknown }).op)}`)
  }
}

/**
 * lead makes this host the shard's leader: it asks the leader to hand over (again every
 * second, a transfer the leader dropped is asked anew) until this host's replica leads.
 */
async function lead(agent: AdminAgent, shardId: number, timeoutMs: number): Promise<void> {
  const [known, voter] = await agent.state((s) => [
    shardId !== 0 && s.shards.has(shardId),
    s.replicasOf(shardId).some((r) => r.hostId === agent.hostId && !r.nonVoting),
  ])
  if (!known) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${shardId} not found`)
  if (!voter) throw invalid(`host ${agent.hostId} has no voting replica of shard ${shardId}`)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const st = await agent.replicaStatus(shardId)
    if (st.leaderId === st.replicaId) return
    if (Date.now() >= deadline)
      throw new ZongziError('ERR_TIMEOUT', `shard ${shardId} still has leader ${st.leaderId}`)
    await agent.transferLeader(shardId, agent.hostId)
    await waitFor(agent, shardId, Math.min(RETRY_TRANSFER_MS, deadline - Date.now()))
  }
}

/** waitFor polls the replica's status until it leads or `ms` pass. */
async function waitFor(agent: AdminAgent, shardId: number, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50))
    const st = await agent.replicaStatus(shardId)
    if (st.leaderId === st.replicaId) return
  }
}
