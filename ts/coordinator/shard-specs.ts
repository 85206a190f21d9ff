// What an agent checks of the shards it is asked to create, before it proposes them.
import { invalid, ZongziError } from '../binding/errors'
import { checkPlacement, DEFAULT_PLACEMENT, isTags, type ShardOptions } from './agent-options'
import type { CommandBody, Placement } from './registry/records'

/** ShardSpec describes one shard of `Agent.createShards`: its type and ShardOptions. */
export interface ShardSpec extends ShardOptions {
  /** The shard's state machine type, registered on the hosts that are to run it. */
  type: string
}

/** ShardItem is a checked shard to create, as the registry's commands carry it. */
export interface ShardItem {
  name: string
  type: string
  tags?: Record<string, string>
  placement?: Placement
}

/**
 * shardItem checks a shard to create and returns it as a registry command carries it (with
 * DEFAULT_PLACEMENT when it names none), or throws ERR_INVALID_ARGUMENT. `registryType` is the
 * type no user shard may have.
 */
export function shardItem(type: unknown, o: ShardOptions, registryType: string): ShardItem {
  if (typeof type !== 'string' || type === '' || type === registryType)
    throw invalid('shard type is required')
  if (o === null || typeof o !== 'object') throw invalid('shard options must be an object')
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 256))
    throw invalid('name must be a string of at most 256 characters')
  if (o.tags !== undefined && !isTags(o.tags))
    throw invalid('tags must map non-empty names to strings')
  if (o.placement !== undefined) checkPlacement(o.placement)
  return { name: o.name ?? '', type, tags: o.tags, placement: o.placement ?? DEFAULT_PLACEMENT }
}

/**
 * shardsCommand checks every shard of a createShards call and returns the one registry
 * command that creates them (undefined for none). A bad one throws ERR_INVALID_ARGUMENT
 * naming it by its index, before anything is proposed.
 */
export function shardsCommand(
  specs: unknown,
  registryType: string,
): Extract<CommandBody, { op: 'shards.create' }> | undefined {
  if (!Array.isArray(specs)) throw invalid('createShards takes an array of shards')
  const items = specs.map((spec: unknown, i) => {
    try {
      if (spec === null || typeof spec !== 'object') throw invalid('a shard must be an object')
      const { type, ...o } = spec as ShardSpec
      return shardItem(type, o, registryType)
    } catch (e) {
      if (!(e instanceof ZongziError)) throw e
      throw invalid(`item ${i}: ${e.message.replace(/^invalid argument: /, '')}`)
    }
  })
  return items.length === 0 ? undefined : { op: 'shards.create', items }
}
