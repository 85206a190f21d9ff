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
import { ADMIN_COMMANDS, ADMIN_USAGE, actionOf, admin } from './admin'
import { runAgent } from './agent-command'
import { arity, connect, failureOf, jsonAsked, parse, statusOf, Usage } from './args'
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
  --json              JSON instead of tables: an action prints {"action":…,"ok":true,…},
                      and an error {"ok":false,"code":…,"message":…,"exitCode":…} on stderr
  --timeout MS        per call (default 5000; an action 30 s, a drain 2 minutes)
exit codes: 1 refused or failed, 2 bad arguments, 3 cluster unreachable`

const VIEWS = ['status', 'hosts', 'shards', 'replicas']

/** asked is how the command line asks to be answered: known in full once it is parsed. */
const asked: { json: boolean; action?: string } = { json: false }

async function run(argv: string[]): Promise<void> {
  asked.json = jsonAsked(argv)
  const { command, args, o } = parse(argv)
  asked.json = o.json
  asked.action = actionOf(command, args) || undefined
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
    const f = failureOf(e)
    if (asked.json) {
      const { action } = asked
      process.stderr.write(`${JSON.stringify({ action, ok: false, ...f })}\n`)
    } else if (e instanceof Usage) {
      process.stderr.write(`zongzi: ${e.message}\n${USAGE}\n`)
    } else {
      const code = e instanceof ZongziError ? `${f.code}: ` : ''
      process.stderr.write(`zongzi: ${code}${f.message}\n`)
    }
    process.exit(f.exitCode)
  },
)
