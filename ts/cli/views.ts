// What the zongzi command prints of a cluster's status and of registry changes: tables (or
// JSON) of hosts, shards and replicas, and one line per change.
import type { RegistryChange } from '../coordinator/registry/changes'
import type { ClusterStatus } from '../ops/status'
import { table } from './table'

/** short is the first 8 characters of a host id, as the tables show it. */
export const short = (id: string): string => id.slice(0, 8)
const tags = (t: Record<string, string>) =>
  Object.entries(t)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')

/** show prints a status the way a command asks for. */
export function show(command: string, s: ClusterStatus, json: boolean): string {
  const names = new Map(s.hosts.map((h) => [h.id, short(h.id)]))
  const host = (id: string | undefined) => (id ? (names.get(id) ?? short(id)) : '-')
  const replicas = s.shards.flatMap((sh) => sh.replicas.map((r) => ({ shardId: sh.id, ...r })))
  if (json) {
    const pick = { status: s, hosts: s.hosts, shards: s.shards, replicas }
    return JSON.stringify(pick[command as keyof typeof pick], null, 2)
  }
  const hosts = table(
    ['HOST', 'STATUS', 'API', 'REPLICAS', 'LEADERS', 'TAGS'],
    s.hosts.map((h) => [short(h.id), h.status, h.apiAddress, h.replicas, h.leaders, tags(h.tags)]),
  )
  const shards = table(
    ['SHARD', 'NAME', 'TYPE', 'STATUS', 'LEADER', 'REPLICAS', 'PLACEMENT'],
    s.shards.map((sh) => [
      sh.id,
      sh.name || '-',
      sh.type,
      sh.status,
      host(sh.leaderHost),
      sh.replicas.length,
      sh.placementError ?? 'ok',
    ]),
  )
  if (command === 'hosts') return hosts
  if (command === 'shards') return shards
  if (command === 'replicas')
    return table(
      ['SHARD', 'REPLICA', 'HOST', 'ROLE', 'STATUS', 'LAG'],
      replicas.map((r) => [
        r.shardId,
        r.id,
        host(r.hostId),
        r.leader ? 'leader' : r.nonVoting ? 'non-voting' : 'voter',
        r.status,
        r.lag ?? '-',
      ]),
    )
  const led = s.shards.filter((sh) => sh.leaderHost).length
  const errors = s.shards.filter((sh) => sh.placementError !== undefined).length
  const head =
    `cluster ${s.cluster} at registry index ${s.index}, as host ${short(s.hostId)} sees it\n` +
    `${s.hosts.length} hosts, ${s.shards.length} shards (${led} with a leader, ` +
    `${errors} with placement errors), ${replicas.length} replicas`
  return `${head}\n\n${hosts}\n\n${shards}`
}

/** line is a registry change on one line. */
export function line(c: RegistryChange): string {
  const what = c.changes
    .map(
      (x) =>
        `${x.kind} ${typeof x.id === 'string' ? short(x.id) : x.id}${x.record ? '' : ' removed'}`,
    )
    .join(', ')
  return `${c.index}  ${c.op}${c.by ? ` by ${short(c.by)}` : ''}  ${what}`
}
