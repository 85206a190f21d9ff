// The zongzi command's actions on a cluster: create and delete shards, drain, remove and
// replace hosts, move a shard's leadership. Each is an agent's own call, made by the host at
// --api (or, for a drain and a leadership, by the host concerned) at the command's request.
import type { BusClient } from '../bus/client'
import type { ShardRecord } from '../coordinator/registry/records'
import type { AdminAction } from '../ops/admin'
import { REGISTRY_TYPE } from '../coordinator/agent-options'
import { arity, hostOf, type Options, statusOf, Usage, whole } from './args'

/** ADMIN_USAGE is the usage of the actions. */
export const ADMIN_USAGE = [
  '  shard create NAME   create a shard: --type T (default: the one type the hosts run),',
  '                      --replicas N or --placement JSON, --tags k=v,...',
  '  shard delete SHARD_ID          delete a shard, its replicas and their data',
  "  host drain HOST_ID             move a host's replicas and leaderships to other hosts",
  "  host undrain HOST_ID           end a host's drain",
  '  host remove HOST_ID            remove a host that is down for good (status gone)',
  '  host replace HOST_ID           replace the replicas of a host that is down, now',
  "  leader transfer SHARD_ID HOST_ID   make the shard's replica on that host its leader",
].join('\n')

/** ADMIN_COMMANDS are the command words of the actions (drain and undrain alone, as before). */
export const ADMIN_COMMANDS = ['shard', 'host', 'leader', 'drain', 'undrain']

/** Print prints a line of the command's output. */
type Print = (s: string) => void

/**
 * Done is what an action did: a line for people, and the fields of its JSON (`--json`), which
 * are `{"action": "host.remove", "ok": true, …}`, the action named as its command words are.
 */
interface Done {
  action: string
  text: string
  fields: Record<string, unknown>
}

/** admin runs an action: `command` is its first word, `args` what follows. */
export async function admin(
  bus: BusClient,
  o: Options,
  command: string,
  args: string[],
  print: Print,
): Promise<void> {
  const d = await act(bus, o, command, args)
  print(o.json ? JSON.stringify({ action: d.action, ok: true, ...d.fields }) : d.text)
}

/** actionOf names the action of a command line (`host.drain` for `drain` alone, too). */
export function actionOf(command: string, args: string[]): string {
  if (command === 'drain' || command === 'undrain') return `host.${command}`
  return ADMIN_COMMANDS.includes(command) && args[0] ? `${command}.${args[0]}` : command
}

/** act performs an action and says what it did. */
async function act(bus: BusClient, o: Options, command: string, args: string[]): Promise<Done> {
  const [verb = '', ...rest] = args
  const action = `${command} ${verb}`
  if (command === 'drain' || command === 'undrain') return drain(bus, o, command, args)
  if (action === 'host drain' || action === 'host undrain') return drain(bus, o, verb, rest)
  if (action === 'shard create') return createShard(bus, o, rest)
  const call = (address: string, a: AdminAction, timeoutMs = o.timeoutMs ?? 30_000) =>
    bus.admin(address, a, { timeoutMs })
  switch (action) {
    case 'shard delete': {
      arity(action, rest, ['SHARD_ID'])
      const shardId = shardIdOf(rest[0])
      await call(o.api, { op: 'shard.delete', shardId })
      return { action: 'shard.delete', text: `deleted shard ${shardId}`, fields: { shardId } }
    }
    case 'host remove':
    case 'host replace': {
      arity(action, rest, ['HOST_ID'])
      const h = hostOf(await statusOf(bus, o.api, o), rest[0])
      const op = verb === 'remove' ? 'host.remove' : 'host.replace'
      await call(o.api, { op, hostId: h.id })
      const text = `${verb === 'remove' ? 'removed' : 'replacing the replicas of'} ${h.id}`
      return { action: op, text, fields: { hostId: h.id } }
    }
    case 'leader transfer': {
      arity(action, rest, ['SHARD_ID', 'HOST_ID'])
      const shardId = shardIdOf(rest[0])
      const h = hostOf(await statusOf(bus, o.api, o), rest[1])
      // The host that is to lead asks for it, and answers once it leads.
      await call(h.apiAddress, { op: 'leader.transfer', shardId }, o.timeoutMs ?? 15_000)
      const text = `shard ${shardId} is led by ${h.id}`
      return { action: 'leader.transfer', text, fields: { shardId, hostId: h.id } }
    }
  }
  const verbs = { shard: 'create|delete', host: 'drain|undrain|remove|replace', leader: 'transfer' }
  throw new Usage(`usage: zongzi ${command} ${verbs[command as keyof typeof verbs]} …`)
}

/** drain asks a host to drain itself, or to end its drain. */
async function drain(bus: BusClient, o: Options, verb: string, args: string[]): Promise<Done> {
  arity(verb, args, ['HOST_ID'])
  const h = hostOf(await statusOf(bus, o.api, o), args[0])
  await bus.drain(h.apiAddress, verb === 'undrain', { timeoutMs: o.timeoutMs })
  const text = `${verb === 'drain' ? 'drained' : 'undrained'} ${h.id}`
  return { action: `host.${verb}`, text, fields: { hostId: h.id } }
}

/** createShard creates a shard as `--type`, `--replicas`/`--placement` and `--tags` say. */
async function createShard(bus: BusClient, o: Options, args: string[]): Promise<Done> {
  arity('shard create', args, ['NAME'])
  const [name] = args
  if (o.replicas !== undefined && o.placement !== undefined)
    throw new Usage('--replicas and --placement do not go together')
  if (o.replicas === 0) throw new Usage('--replicas must be at least 1')
  let placement: unknown
  if (o.placement !== undefined) {
    try {
      placement = JSON.parse(o.placement)
    } catch {
      throw new Usage('--placement must be JSON, e.g. {"members":{"count":3},"vary":["zone"]}')
    }
  }
  if (o.replicas !== undefined) placement = { members: { count: o.replicas } }
  const s = await statusOf(bus, o.api, o)
  let type = o.type
  if (type === undefined) {
    const types = new Set(s.hosts.flatMap((h) => h.shardTypes))
    types.delete(REGISTRY_TYPE)
    if (types.size !== 1)
      throw new Usage(`--type is required: the hosts run ${[...types].join(', ') || 'no type'}`)
    type = [...types][0]
  }
  const existed = s.shards.some((sh) => sh.name === name)
  const action = { op: 'shard.create', type, name, tags: tagsOf(o.tags), placement }
  const data = await bus.admin(o.api, action, { timeoutMs: o.timeoutMs ?? 30_000 })
  const sh = JSON.parse(data.toString()) as ShardRecord
  const text = `${existed ? 'shard exists' : 'created shard'} ${sh.id}: ${sh.name} (${sh.type})`
  return {
    action: 'shard.create',
    text,
    fields: { shardId: sh.id, created: !existed, shard: sh },
  }
}

/** shardIdOf reads a shard id. */
function shardIdOf(v: string): number {
  return whole(v, 'SHARD_ID') as number
}

/** tagsOf reads `--tags k=v,…`. */
function tagsOf(v: string | undefined): Record<string, string> | undefined {
  if (v === undefined) return undefined
  const tags: Record<string, string> = {}
  for (const kv of v.split(',').filter((x) => x !== '')) {
    const i = kv.indexOf('=')
    if (i < 1) throw new Usage(`--tags takes k=v pairs separated by commas, not ${kv}`)
    tags[kv.slice(0, i)] = kv.slice(i + 1)
  }
  return tags
}
