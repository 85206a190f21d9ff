// The agent's clients: one ShardClient per shard and options, shared by every caller of
// `agent.client`, and the TypedClients of ShardTypes over them.
import { invalid, ZongziError } from '../binding/errors'
import { type AgentInside, clientContext } from './agent-contexts'
import { checkShardId } from './agent-options'
import type { ShardClientOptions } from './client/client-context'
import { ShardClient } from './client/shard-client'
import { TypedClient } from './client/typed-client'
import type { ShardRecord } from './registry/records'
import { type AnyShardType, shardTypeOf } from './shard-type'

/** ClientsInside is what making clients uses of the agent. */
export interface ClientsInside extends AgentInside {
  /** The agent's clients, by shard and options. */
  readonly clients: Map<string, ShardClient>
}

/**
 * clientOf is `agent.client` (see there): a share of the agent's ShardClient of the shard and
 * options, or a TypedClient over one for a TypedShard or a `type`.
 */
export function clientOf(
  a: ClientsInside,
  shard: number | ShardRecord,
  o: ShardClientOptions & { type?: AnyShardType },
): ShardClient | TypedClient<unknown, unknown, unknown, unknown> {
  if (o === null || typeof o !== 'object') throw invalid('client options must be an object')
  const shardId = typeof shard === 'number' ? shard : shard?.id
  checkShardId(shardId)
  const options = { writeToLeader: !!o.writeToLeader, session: o.session !== false }
  const key = `${shardId}/${options.writeToLeader}/${options.session}`
  let c = a.clients.get(key)
  if (!c || c.closed) {
    c = new ShardClient(clientContext(a), shardId, options)
    a.clients.set(key, c)
  }
  if (typeof shard !== 'object' && o.type === undefined) return c.share()
  const type = shardTypeOf(a.shardTypes, a.registry.state, shard, o.type)
  return new TypedClient(c.share(), type.codec)
}

/**
 * clientByNameOf is `agent.clientByName` (see there): `clientOf` of the shard the name has,
 * looked up linearizably.
 */
export async function clientByNameOf(
  a: ClientsInside,
  name: string,
  o: ShardClientOptions & { type?: AnyShardType } = {},
): Promise<ShardClient | TypedClient<unknown, unknown, unknown, unknown>> {
  const sh = await a.started().registry.read((s) => s.shardByName(name), a.timeoutMs)
  if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `no shard named ${JSON.stringify(name)}`)
  return clientOf(a, sh.id, o)
}
