// Shards: the Agent's calls that create, change and delete shards, with their checks and
// defaults (a shard without a placement gets DEFAULT_PLACEMENT).
import { invalid, ZongziError } from '../binding/errors'
import {
  type AgentCallOptions,
  checkPlacement,
  checkShardId,
  isTags,
  REGISTRY_TYPE,
  type ShardOptions,
  type ShardUpdate,
} from './agent-options'
import { type Accepted, type Command, createdId, type ShardRecord } from './registry/records'
import type { RegistryState } from './registry/state'
import { type ShardSpec, shardItem, shardsCommand } from './shard-specs'
import { type AnyShardType, isShardType, typed } from './shard-type'

/** ShardsContext is what the shard calls use of the agent. */
export interface ShardsContext {
  /** checkReady throws unless the agent is ready. */
  checkReady(): void
  /** The ShardTypes the agent knows, by name: createShard adds the one it is given. */
  readonly shardTypes: Map<string, AnyShardType>
  /** propose applies a registry command. */
  propose(cmd: Command, o: AgentCallOptions): Promise<Accepted>
  /** read runs `fn` on a linearizable snapshot of the registry. */
  read<T>(fn: (s: RegistryState) => T, o: AgentCallOptions): Promise<T>
}

/** createShard is `agent.createShard` (see there). */
export async function createShard(
  ctx: ShardsContext,
  t: string | AnyShardType,
  o: ShardOptions,
): Promise<ShardRecord> {
  ctx.checkReady()
  const type = isShardType(t) ? t.name : t
  const item = shardItem(type, o, REGISTRY_TYPE)
  if (isShardType(t) && !ctx.shardTypes.has(item.type)) ctx.shardTypes.set(item.type, t)
  const out = await ctx.propose({ op: 'shard.create', ...item }, o)
  const sh = await shardRecord(ctx, createdId(out), o)
  // An existing shard of that name: what was asked of it explicitly must be what it has.
  for (const [what, asked, has] of [
    ['placement', o.placement, sh.placement],
    ['tags', o.tags, sh.tags],
  ] as const) {
    if (asked !== undefined && canonical(asked) !== canonical(has)) {
      const name = JSON.stringify(sh.name)
      throw new ZongziError(
        'ERR_SHARD_EXISTS',
        `shard ${name} exists with other ${what} (${canonical(has)}); change it with updateShard`,
      )
    }
  }
  return isShardType(t) ? typed(sh, t) : sh
}

/** createShards is `agent.createShards` (see there). */
export async function createShards(
  ctx: ShardsContext,
  specs: ShardSpec[],
  o: AgentCallOptions,
): Promise<ShardRecord[]> {
  ctx.checkReady()
  const cmd = shardsCommand(specs, REGISTRY_TYPE)
  if (!cmd) return []
  const ids = (await ctx.propose(cmd, o)).ids ?? []
  const found = await ctx.read((s) => ids.map((id) => s.shards.get(id)), o)
  const gone = ids.find((_, i) => !found[i])
  if (gone !== undefined)
    throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${gone} was deleted meanwhile`)
  return found as ShardRecord[]
}

/** updateShard is `agent.updateShard` (see there). */
export async function updateShard(
  ctx: ShardsContext,
  id: number,
  o: ShardUpdate,
): Promise<ShardRecord> {
  ctx.checkReady()
  checkShardId(id)
  if (o === null || typeof o !== 'object') throw invalid('shard options must be an object')
  if (o.tags !== undefined && !isTags(o.tags))
    throw invalid('tags must map non-empty names to strings')
  if (o.placement !== undefined) checkPlacement(o.placement)
  await known(ctx, id, o)
  await ctx.propose({ op: 'shard.update', id, tags: o.tags, placement: o.placement }, o)
  return shardRecord(ctx, id, o)
}

/** deleteShard is `agent.deleteShard` (see there). */
export async function deleteShard(
  ctx: ShardsContext,
  id: number,
  o: AgentCallOptions,
): Promise<void> {
  ctx.checkReady()
  checkShardId(id)
  await known(ctx, id, o)
  await ctx.propose({ op: 'shard.delete', id }, o)
}

/** shardRecord returns a shard's record, or fails when a concurrent delete removed it. */
async function shardRecord(
  ctx: ShardsContext,
  id: number,
  o: AgentCallOptions,
): Promise<ShardRecord> {
  const sh = await ctx.read((s) => s.shards.get(id), o)
  if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} does not exist`)
  return sh
}

/** known fails unless a user shard `id` exists. */
async function known(ctx: ShardsContext, id: number, o: AgentCallOptions): Promise<void> {
  const sh = await ctx.read((s) => s.shards.get(id), o)
  if (!sh || id === 0) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} not found`)
}

/** canonical is a value's JSON with the keys of every object in order, to compare by. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  )
}
