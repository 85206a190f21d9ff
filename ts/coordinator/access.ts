// Access: the Agent's calls that let hosts in and out — join tokens signed with the cluster's
// join key, the key's rotation, and a host leaving the cluster for good.
import { invalid, ZongziError } from '../binding/errors'
import type { AgentInside } from './agent-contexts'
import { type AgentCallOptions, callOptions, isTags, type JoinTokenOptions } from './agent-options'
import { drainContext } from './agent-contexts'
import { type DrainOptions, drainHost } from './control/drain'
import { newJoinKey, newTokenId, signJoinToken } from './registry/join-tokens'

/** createJoinToken is `agent.createJoinToken` (see there). */
export async function createJoinToken(
  a: AgentInside,
  o: JoinTokenOptions & AgentCallOptions,
): Promise<string> {
  a.checkReady()
  const ttlMs = o.ttlMs ?? 3_600_000
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)
    throw invalid('ttlMs must be a positive whole number of milliseconds')
  if (o.tags !== undefined && !isTags(o.tags))
    throw invalid('tags must map non-empty names to strings')
  const { timeoutMs = a.timeoutMs, signal } = callOptions(o)
  const key = await a.started().registry.read((s) => s.access.joinKey, timeoutMs, signal)
  if (!key)
    throw new ZongziError('ERR_INVALID_ARGUMENT', 'this cluster was made without a join key')
  const claims = { id: newTokenId(), expires: Date.now() + ttlMs, tags: { ...o.tags } }
  return signJoinToken(key, claims)
}

/** rotateJoinKey is `agent.rotateJoinKey` (see there). */
export async function rotateJoinKey(a: AgentInside, o?: AgentCallOptions): Promise<void> {
  a.checkReady()
  const { timeoutMs, signal } = callOptions(o)
  await a
    .started()
    .registry.propose({ op: 'access.rotate', joinKey: newJoinKey() }, timeoutMs, signal)
}

/**
 * leaveCluster drains this host (see `agent.drain`) and marks it `gone`: a drain that fails
 * leaves the agent running, still draining, and rejects with its error.
 */
export async function leaveCluster(a: AgentInside, drain: true | DrainOptions): Promise<void> {
  a.checkReady()
  const o = drain === true ? {} : drain
  await drainHost(drainContext(a, { signal: o.signal }), o)
  const now = Date.now()
  await a.started().registry.propose({ op: 'host.status', id: a.hostId, status: 'gone', now })
}
