// The zongzi command's line: its options, parsed and checked, the errors of a bad command
// line, and the connection to the agent at --api.
import * as grpc from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import { ZongziError } from '../binding/errors'
import { BusClient } from '../bus/client'
import type { ClusterStatus, HostStatusRow } from '../ops/status'

/** Exit codes: a refusal or failure, bad arguments, and a cluster that cannot be reached. */
export const FAILED = 1
export const BAD_ARGUMENTS = 2
export const UNREACHABLE = 3

/** Usage is an error in the command line: the usage follows its message. */
export class Usage extends Error {}

/** ConfigError is a config file that cannot be used: it exits as bad arguments do. */
export class ConfigError extends Error {}

/** Failure is how the command failed: its exit code, and the code and message it prints. */
export interface Failure {
  exitCode: number
  /** A ZongziError's code; ERR_USAGE, ERR_CONFIG, or ERR_INTERNAL for any other error. */
  code: string
  message: string
}

/**
 * failureOf classifies an error: bad arguments and config files exit 2, an agent that cannot
 * be reached (or is of another cluster) 3, and anything refused or failed 1.
 */
export function failureOf(e: unknown): Failure {
  const message = e instanceof Error ? e.message : String(e)
  if (e instanceof Usage) return { exitCode: BAD_ARGUMENTS, code: 'ERR_USAGE', message }
  if (e instanceof ConfigError) return { exitCode: BAD_ARGUMENTS, code: 'ERR_CONFIG', message }
  if (!(e instanceof ZongziError)) return { exitCode: FAILED, code: 'ERR_INTERNAL', message }
  const unreachable = ['ERR_UNAVAILABLE', 'ERR_CLUSTER_MISMATCH'].includes(e.code)
  return { exitCode: unreachable ? UNREACHABLE : FAILED, code: e.code, message }
}

/** jsonAsked tells whether a command line asks for JSON, before (or without) parsing it. */
export function jsonAsked(argv: string[]): boolean {
  const end = argv.indexOf('--')
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json')
}

/** Options are the command line's options, as parsed. */
export interface Options {
  api: string
  cluster: string
  json: boolean
  follow: boolean
  since?: number
  /** --timeout, if given: each command has its own default. */
  timeoutMs?: number
  credentials?: grpc.ChannelCredentials
  type?: string
  replicas?: number
  placement?: string
  tags?: string
  config?: string
}

/** Parsed is a command line: its command words, their arguments, and its options. */
export interface Parsed {
  command: string
  args: string[]
  o: Options
}

/** parse reads the command line; `agent` needs no --api nor --cluster. */
export function parse(argv: string[]): Parsed {
  let parsed: ReturnType<typeof parseLine>
  try {
    parsed = parseLine(argv)
  } catch (e) {
    // node:util's own message: an unknown option, or one without its value.
    throw new Usage((e as Error).message)
  }
  const { values, positionals } = parsed
  const [command = '', ...args] = positionals
  if (values.help) throw new Usage('')
  const api = values.api ?? process.env.ZONGZI_API ?? ''
  const cluster = values.cluster ?? process.env.ZONGZI_CLUSTER ?? ''
  if (command !== 'agent') {
    if (!api.includes(':')) throw new Usage('--api HOST:PORT is required')
    if (!cluster) throw new Usage('--cluster NAME is required')
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
      since: whole(values.since, '--since'),
      timeoutMs: whole(values.timeout, '--timeout'),
      credentials: ca ? grpc.credentials.createSsl(read(ca), read(key), read(cert)) : undefined,
      type: values.type,
      replicas: whole(values.replicas, '--replicas'),
      placement: values.placement,
      tags: values.tags,
      config: values.config,
    },
  }
}

function parseLine(argv: string[]) {
  return parseArgs({
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
      type: { type: 'string' },
      replicas: { type: 'string' },
      placement: { type: 'string' },
      tags: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean' },
    },
  })
}

/** whole reads a whole number option (undefined when absent). */
export function whole(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (v === '' || !Number.isSafeInteger(n) || n < 0)
    throw new Usage(`${what} must be a whole number`)
  return n
}

/** arity checks that a command has exactly the arguments its usage names. */
export function arity(command: string, args: string[], names: string[]): void {
  if (args.length !== names.length)
    throw new Usage(
      names.length ? `${command} takes ${names.join(' ')}` : `${command} takes no arguments`,
    )
}

/**
 * connect finds out who the agent at --api is and calls it (and others) as that host. An
 * agent that does not answer in time is unreachable (ERR_UNAVAILABLE), as one refusing
 * connections is; a later call's ERR_TIMEOUT is that call's failure.
 */
export async function connect(o: Options): Promise<BusClient> {
  let me = ''
  const bus = new BusClient(o.cluster, { credentials: o.credentials, hostId: () => me })
  try {
    me = (await bus.probe(o.api, { timeoutMs: o.timeoutMs ?? 5000 })).hostId
  } catch (e) {
    bus.close()
    if (e instanceof ZongziError && e.code === 'ERR_TIMEOUT')
      throw new ZongziError('ERR_UNAVAILABLE', `${o.api} did not answer: ${e.message}`)
    throw e
  }
  return bus
}

/** statusOf asks the host at `address` for the cluster's status. */
export async function statusOf(
  bus: BusClient,
  address: string,
  o: Options,
): Promise<ClusterStatus> {
  const data = await bus.status(address, { timeoutMs: o.timeoutMs ?? 5000 })
  return JSON.parse(data.toString()) as ClusterStatus
}

/** hostOf finds the one host whose id is `id` or starts with it. */
export function hostOf(s: ClusterStatus, id: string): HostStatusRow {
  const exact = s.hosts.find((h) => h.id === id)
  const matches = exact ? [exact] : s.hosts.filter((h) => id !== '' && h.id.startsWith(id))
  if (matches.length !== 1)
    throw new Usage(`${matches.length ? 'several hosts' : 'no host'} match ${id}`)
  return matches[0]
}
