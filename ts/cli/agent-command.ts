// `zongzi agent --config FILE`: runs an agent whose options come from a config file, and its
// state machines from the modules the file names; it stops on SIGINT or SIGTERM.
//
// The file is JSON, or a module (.mjs, .js, .cjs) whose default export is the config object.
// Its keys are `cluster`, `peers`, `stateMachines` (type name to module path), `logLevel`, and
// any AgentOptions (`dataDir`, `apiAddress`, `tls`, `joinToken`, …). Paths in it (`dataDir`,
// the TLS files, the modules) are relative to the file.
import { readFileSync } from 'node:fs'
import { dirname, extname, isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

import type { TlsFiles } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import { Agent } from '../coordinator/agent'
import type { AgentOptions } from '../coordinator/agent-options'
import type { Logger, LogFields } from '../coordinator/control/logger'
import { type AnyShardType, isShardType } from '../coordinator/shard-type'
import { ZongziError } from '../binding/errors'
import { ConfigError } from './args'
import { checkKeys } from './config-keys'

/** AgentConfig is what a config file holds. */
export interface AgentConfig extends AgentOptions {
  /** The cluster's name. */
  cluster: string
  /** The bus addresses of the cluster's initial peers (none with `singleHost`). */
  peers: string[]
  /**
   * The state machine types this host runs: a name, and the path of a module whose default
   * export is a state machine factory `(shardId, replicaId) => StateMachine`, a state machine
   * class (constructed with the same arguments), or a ShardType of that name.
   */
  stateMachines?: Record<string, string>
  /**
   * The least level logged to stderr, as JSON lines: debug, info, warn (the default: raft-rs
   * logs each replica's start and elections at info), error, silent.
   */
  logLevel?: string
}

/** LEVELS are the log levels, least first. */
const LEVELS = ['debug', 'info', 'warn', 'error', 'silent']

/**
 * runAgent starts the agent `configPath` describes, prints where it listens, and resolves
 * once a signal stopped it; it rejects with a ConfigError when the file cannot be used.
 */
export async function runAgent(configPath: string, print: (s: string) => void): Promise<void> {
  const file = resolve(configPath)
  const { cluster, peers, stateMachines = {}, logLevel = 'warn', ...options } = await load(file)
  const agent = await configure(file, cluster, peers, stateMachines, logLevel, options)
  let stopping = false
  const stopped = new Promise<void>((done) => {
    const stop = (signal: string) => {
      if (stopping) process.exit(1) // a second signal: stop waiting
      stopping = true
      print(`${signal}: stopping`)
      agent.stop().then(done, (e) => {
        process.stderr.write(`zongzi: ${(e as Error).message}\n`)
        process.exit(1)
      })
    }
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGTERM', () => stop('SIGTERM'))
  })
  agent.on('status', (s) => {
    if (s !== 'failed') return
    process.stderr.write(`zongzi: the agent failed: ${agent.failure?.message}\n`)
    void agent.stop().finally(() => process.exit(1))
  })
  // A signal during the start stops the agent: the start's failure is then no error.
  const started = agent.start().catch((e) => {
    if (!stopping) throw e
  })
  await Promise.race([started, stopped])
  if (agent.status === 'ready') {
    const http = agent.httpAddress ? `, http ${agent.httpAddress}` : ''
    print(
      `host ${agent.hostId} of cluster ${cluster} is ready: bus ${agent.apiAddress}, ` +
        `raft ${agent.raftAddress}${http}`,
    )
  }
  await stopped
  print('stopped')
}

/** load reads a config file: JSON, or a module whose default export is the config. */
async function load(file: string): Promise<AgentConfig> {
  let config: unknown
  if (['.mjs', '.js', '.cjs'].includes(extname(file))) {
    config = (await importModule(file, 'config')).default
  } else {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`)
    }
    try {
      config = JSON.parse(text)
    } catch (e) {
      throw new ConfigError(`config ${file} is not JSON: ${(e as Error).message}`)
    }
  }
  const c = config as AgentConfig
  const bad = (why: string) => new ConfigError(`config ${file}: ${why}`)
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw bad('must be an object')
  checkKeys(c, file)
  if (typeof c.cluster !== 'string' || !c.cluster) throw bad('"cluster" (a name) is required')
  if (!Array.isArray(c.peers)) throw bad('"peers" (a list of host:port) is required')
  if (typeof c.dataDir !== 'string' || !c.dataDir) throw bad('"dataDir" is required')
  const sm = c.stateMachines
  if (sm !== undefined && (sm === null || typeof sm !== 'object' || Array.isArray(sm)))
    throw bad('"stateMachines" must map type names to module paths')
  if (c.logLevel !== undefined && !LEVELS.includes(c.logLevel))
    throw bad(`"logLevel" must be one of ${LEVELS.join(', ')}`)
  return c
}

/** configure makes the agent and registers its state machine types. */
async function configure(
  file: string,
  cluster: string,
  peers: string[],
  stateMachines: Record<string, string>,
  logLevel: string,
  options: AgentOptions,
): Promise<Agent> {
  const dir = dirname(file)
  const at = (p: string) => (isAbsolute(p) ? p : resolve(dir, p))
  const tls = (t: TlsFiles | undefined, where: string) => {
    if (t === undefined) return t
    const paths = t && typeof t === 'object' ? [t.ca, t.cert, t.key] : []
    if (!paths.every((x) => typeof x === 'string') || paths.length === 0)
      throw new ConfigError(`config ${file}: "${where}" needs "ca", "cert" and "key" file paths`)
    return { ca: at(t.ca), cert: at(t.cert), key: at(t.key) }
  }
  const o: AgentOptions = {
    ...options,
    dataDir: at(options.dataDir),
    tls: tls(options.tls, 'tls'),
    ...(options.host ? { host: { ...options.host, tls: tls(options.host.tls, 'host.tls') } } : {}),
    // A module config may hand its own logger (pino, say); else JSON lines on stderr.
    logger: options.logger ?? stderrLogger(LEVELS.indexOf(logLevel), {}),
  }
  let agent: Agent
  try {
    agent = new Agent(cluster, peers, o)
  } catch (e) {
    if (e instanceof ZongziError) throw new ConfigError(`config ${file}: ${e.message}`)
    throw e
  }
  for (const [name, path] of Object.entries(stateMachines)) {
    if (typeof path !== 'string') throw new ConfigError(`stateMachines.${name} must be a path`)
    const m = await importModule(at(path), `the state machine module of ${name}`)
    const f = m.default
    if (isShardType(f)) {
      if (f.name !== name)
        throw new ConfigError(`${path} exports ShardType ${f.name}, not ${JSON.stringify(name)}`)
      agent.register(f as AnyShardType)
    } else if (typeof f === 'function') {
      agent.register(name, factoryOf(f as (shardId: number, replicaId: number) => unknown))
    } else {
      const what = 'a state machine factory, a class or a ShardType'
      throw new ConfigError(`${path} (type ${name}) must export ${what} as its default`)
    }
  }
  return agent
}

/** factoryOf makes a factory of a class (constructed per replica) or is the factory given. */
function factoryOf(f: (shardId: number, replicaId: number) => unknown): StateMachineFactory {
  const isClass = /^class[\s{]/.test(Function.prototype.toString.call(f))
  const C = f as unknown as new (shardId: number, replicaId: number) => unknown
  return (isClass
    ? (shardId: number, replicaId: number) => new C(shardId, replicaId)
    : f) as unknown as StateMachineFactory
}

/**
 * importModule loads an ES module or CommonJS module. The build emits CommonJS, which would
 * turn a plain import() into require() (which cannot load .mjs): a function made at run time
 * keeps Node's own import().
 */
async function importModule(path: string, what: string): Promise<{ default?: unknown }> {
  const load = new Function('u', 'return import(u)') as (
    u: string,
  ) => Promise<{ default?: unknown }>
  try {
    return await load(pathToFileURL(path).href)
  } catch (e) {
    throw new ConfigError(`cannot load ${what} (${path}): ${(e as Error).message}`)
  }
}

/** stderrLogger writes records at `level` and above to stderr as JSON lines, pino-like. */
function stderrLogger(level: number, bindings: LogFields): Logger {
  const at = (n: number) => (fields: LogFields, msg?: string) => {
    if (n < level) return
    const rec = { level: LEVELS[n], time: Date.now(), ...bindings, ...fields, msg }
    process.stderr.write(`${JSON.stringify(rec, (_, v) => (v instanceof Error ? v.message : v))}\n`)
  }
  return {
    debug: at(0),
    info: at(1),
    warn: at(2),
    error: at(3),
    child: (b) => stderrLogger(level, { ...bindings, ...b }),
  }
}
