#!/usr/bin/env node
// zongzi: look at a running cluster and drain hosts, through one agent's bus (the agent's own
// calls, over its TLS when it has TLS; run it with the TLS files of the host it calls).
//
//   zongzi status|hosts|shards|replicas --api HOST:PORT --cluster NAME [--json]
//   zongzi changes --api … --cluster … [--since INDEX] [--follow] [--json]
//   zongzi drain|undrain HOST_ID --api … --cluster …
import * as grpc from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { ZongziError } from '../binding/errors'
import { BusClient } from '../bus/client'
import type { RegistryChange } from '../coordinator/registry/changes'
import type { ClusterStatus } from '../ops/status'
import { table } from './table'

const USAGE = `usage: zongzi COMMAND --api HOST:PORT --cluster NAME [options]
commands:
  status              the cluster at a glance
  hosts               hosts with status, tags, replicas and leaders
  shards              shards with leader, replicas and placement errors
  replicas            every replica with its host, role, status and lag
  changes             registry changes (--since INDEX, --follow to keep reading)
  drain HOST_ID       move a host's replicas and leaderships to other hosts
  undrain HOST_ID     end a host's drain
options:
  --api HOST:PORT     an agent's bus address (or ZONGZI_API)
  --cluster NAME      the cluster's name (or ZONGZI_CLUSTER)
  --tls-ca, --tls-cert, --tls-key FILE   the TLS files of the host at --api, when TLS is on
  --json              JSON instead of tables
  --timeout MS        per call (default 5000; a drain waits up to 2 minutes)`

/** Exit codes: bad arguments, and a cluster that cannot be reached. */
const BAD_ARGUMENTS = 2
const UNREACHABLE = 3

/** Usage is an error in the command line: the usage follows its message. */
class Usage extends Error {}

/** Options are the command line's options, as parsed. */
interface Options {
  api: string
  cluster: string
  json: boolean
  follow: boolean
  since?: number
  timeoutMs: number
  credentials?: grpc.ChannelCredentials
}

function options(argv: string[]): { command: string; args: string[]; o: Options } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      cluster: { type: 'string' },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      json: { type: 'boolean' },
      follow: { type: 'boolean' },
      since: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean' },
    },
  })
  const [command = '', ...args] = positionals
  if (values.help) throw new Usage('')
  const api = values.api ?? process.env.ZONGZI_API ?? ''
  const cluster = values.cluster ?? process.env.ZONGZI_CLUSTER ?? ''
  if (!api.includes(':')) throw new Usage('--api HOST:PORT is required')
  if (!cluster) throw new Usage('--cluster NAME is required')
  const number = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) throw new Usage(`${what} must be a whole number`)
    return n
  }
  const tls = [values['tls-ca'], values['tls-cert'], values['tls-key']]
  if (tls.some((x) => x) && !tls.every((x) => x))
    throw new Usage('--tls-ca, --tls-cert and --tls-key go together')
  const read = (p: string) => {
    try {
      return readFileSync(p)
    } catch (e) {
      throw new Usage(`cannot read ${p}: ${(e as Error).message}`)
    }
  }
  const [ca, cert, key] = tls as string[]
  return {
    command,
    args,
    o: {
      api,
      cluster,
      json: !!values.json,
      follow: !!values.follow,
      since: number(values.since, '--since'),
      timeoutMs: number(values.timeout, '--timeout') ?? 5000,
      credentials: ca ? grpc.credentials.createSsl(read(ca), read(key), read(cert)) : undefined,
    },
  }
}

/** connect finds out who the agent at --api is and calls it (and others) as that host. */
async function connect(o: Options): Promise<BusClient> {
  let me = ''
  const bus = new BusClient(o.cluster, { credentials: o.credentials, hostId: () => me })
  me = (await bus.probe(o.api, { timeoutMs: o.timeoutMs })).hostId
  return bus
}

const short = (id: string) => id.slice(0, 8)
const tags = (t: Record<string, string>) =>
  Object.entries(t)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')

/** show prints a status the way a command asks for. */
function show(command: string, s: ClusterStatus, json: boolean): string {
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
function line(c: RegistryChange): string {
  const what = c.changes
    .map(
      (x) =>
        `${x.kind} ${typeof x.id === 'string' ? short(x.id) : x.id}${x.record ? '' : ' removed'}`,
    )
    .join(', ')
  return `${c.index}  ${c.op}${c.by ? ` by ${short(c.by)}` : ''}  ${what}`
}

async function run(argv: string[]): Promise<void> {
  const { command, args, o } = options(argv)
  const print = (s: string) => {
    process.stdout.write(`${s}\n`)
  }
  const views = ['status', 'hosts', 'shards', 'replicas']
  if (!views.includes(command) && !['changes', 'drain', 'undrain'].includes(command))
    throw new Usage(
      command ? `unknown command ${JSON.stringify(command)}` : 'a command is required',
    )
  if ((command === 'drain' || command === 'undrain') !== (args.length === 1))
    throw new Usage(args.length ? `${command} takes no arguments` : `${command} HOST_ID`)
  const bus = await connect(o)
  try {
    const status = async (address = o.api) =>
      JSON.parse(
        (await bus.status(address, { timeoutMs: o.timeoutMs })).toString(),
      ) as ClusterStatus
    if (views.includes(command)) return print(show(command, await status(), o.json))
    if (command === 'changes') {
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      // From --since, or all the host keeps (without --follow) or what comes (with it);
      // without --follow, up to the index the host is at now.
      const s = await status()
      const until = o.follow ? Number.POSITIVE_INFINITY : s.index
      const since = o.since ?? (o.follow ? undefined : s.changesFrom)
      if (since !== undefined && since >= until) return
      for await (const data of bus.changes(o.api, since, ac.signal)) {
        const c = JSON.parse(data.toString()) as RegistryChange
        print(o.json ? JSON.stringify(c) : line(c))
        if (c.index >= until) break
      }
      return
    }
    const s = await status()
    const matches = s.hosts.filter((h) => h.id === args[0] || h.id.startsWith(args[0]))
    if (matches.length !== 1)
      throw new Usage(`${matches.length ? 'several hosts' : 'no host'} match ${args[0]}`)
    await bus.drain(matches[0].apiAddress, command === 'undrain')
    print(`${command === 'drain' ? 'drained' : 'undrained'} ${matches[0].id}`)
  } finally {
    bus.close()
  }
}

// grpc-js names the server's IP address in TLS (Node deprecates that, DEP0123): the warning
// is about the library, not the command, and would only add noise to what the command prints.
process.noDeprecation = true
run(process.argv.slice(2)).then(
  () => process.exit(0),
  (e) => {
    if (e instanceof Usage) {
      process.stderr.write(`${e.message ? `zongzi: ${e.message}\n` : ''}${USAGE}\n`)
      process.exit(BAD_ARGUMENTS)
    }
    const code = e instanceof ZongziError ? e.code : ''
    process.stderr.write(`zongzi: ${code ? `${code}: ` : ''}${(e as Error).message}\n`)
    const unreachable = ['ERR_UNAVAILABLE', 'ERR_TIMEOUT', 'ERR_CLUSTER_MISMATCH'].includes(code)
    process.exit(unreachable ? UNREACHABLE : 1)
  },
)
