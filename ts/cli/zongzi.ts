#!/usr/bin/env node
// zongzi: look at a running cluster and act on it through one agent's bus (the agent's own
// calls, over its TLS when it has TLS; run it with the TLS files of the host it calls), or run
// an agent from a config file.
//
//   zongzi status|hosts|shards|replicas --api HOST:PORT --cluster NAME [--json]
//   zongzi changes --api … --cluster … [--since INDEX] [--follow] [--json]
//   zongzi shard create|delete, host drain|undrain|remove|replace, leader transfer …
//   zongzi agent --config FILE
import { ZongziError } from '../binding/errors'
import type { RegistryChange } from '../coordinator/registry/changes'
import { ADMIN_COMMANDS, ADMIN_USAGE, admin } from './admin'
import { runAgent } from './agent-command'
import {
  arity,
  BAD_ARGUMENTS,
  ConfigError,
  connect,
  FAILED,
  parse,
  statusOf,
  UNREACHABLE,
  Usage,
} from './args'
import { line, show } from './views'

const USAGE = `usage: zongzi COMMAND --api HOST:PORT --cluster NAME [options]
commands:
  status              the cluster at a glance
  hosts               hosts with status, tags, replicas and leaders
  shards              shards with leader, replicas and placement errors
  replicas            every replica with its host, role, status and lag
  changes             registry changes (--since INDEX, --follow to keep reading)
${ADMIN_USAGE}
  drain|undrain HOST_ID          the same as host drain|undrain
  agent --config FILE            run an agent as the file says (docs/operations.md)
HOST_ID may be the start of a host's id.
options:
  --api HOST:PORT     an agent's bus address (or ZONGZI_API)
  --cluster NAME      the cluster's name (or ZONGZI_CLUSTER)
  --tls-ca, --tls-cert, --tls-key FILE   the TLS files of the host at --api, when TLS is on
  --json              JSON instead of tables
  --timeout MS        per call (default 5000; an action 30 s, a drain 2 minutes)
exit codes: 1 refused or failed, 2 bad arguments, 3 cluster unreachable`

const VIEWS = ['status', 'hosts', 'shards', 'replicas']

async function run(argv: string[]): Promise<void> {
  const { command, args, o } = parse(argv)
  const print = (s: string) => {
    process.stdout.write(`${s}\n`)
  }
  if (command === 'agent') {
    arity(command, args, [])
    if (!o.config) throw new Usage('agent --config FILE')
    return runAgent(o.config, print)
  }
  const known = [...VIEWS, 'changes', ...ADMIN_COMMANDS]
  if (!known.includes(command))
    throw new Usage(
      command ? `unknown command ${JSON.stringify(command)}` : 'a command is required',
    )
  if (!ADMIN_COMMANDS.includes(command)) arity(command, args, [])
  const bus = await connect(o)
  try {
    if (VIEWS.includes(command)) return print(show(command, await statusOf(bus, o.api, o), o.json))
    if (command !== 'changes') return await admin(bus, o, command, args, print)
    const ac = new AbortController()
    process.once('SIGINT', () => ac.abort())
    // From --since, or all the host keeps (without --follow) or what comes (with it);
    // without --follow, up to the index the host is at now.
    const s = await statusOf(bus, o.api, o)
    const until = o.follow ? Number.POSITIVE_INFINITY : s.index
    const since = o.since ?? (o.follow ? undefined : s.changesFrom)
    if (since !== undefined && since >= until) return
    for await (const data of bus.changes(o.api, since, ac.signal)) {
      const c = JSON.parse(data.toString()) as RegistryChange
      print(o.json ? JSON.stringify(c) : line(c))
      if (c.index >= until) break
    }
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
    if (e instanceof Usage && e.message === '') {
      process.stdout.write(`${USAGE}\n`) // --help
      process.exit(0)
    }
    if (e instanceof Usage) {
      process.stderr.write(`${e.message ? `zongzi: ${e.message}\n` : ''}${USAGE}\n`)
      process.exit(BAD_ARGUMENTS)
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`zongzi: ${e.message}\n`)
      process.exit(BAD_ARGUMENTS)
    }
    const code = e instanceof ZongziError ? e.code : ''
    process.stderr.write(`zongzi: ${code ? `${code}: ` : ''}${(e as Error).message}\n`)
    const unreachable = ['ERR_UNAVAILABLE', 'ERR_CLUSTER_MISMATCH'].includes(code)
    process.exit(unreachable ? UNREACHABLE : FAILED)
  },
)
