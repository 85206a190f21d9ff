// The keys a config file of `zongzi agent` may hold, at its top and in the objects of options
// it nests (tls, host, host.tls, health, liveness): a key not among them is a typo, refused
// with the keys it could have meant. The lists are checked against the option types when the
// code is compiled, so an option added to AgentOptions must be added here too.
import type { TlsFiles } from '../binding/host'
import type { HostHealthOptions } from '../coordinator/client/health'
import type { LivenessOptions } from '../coordinator/control/liveness'
import type { AgentOptions } from '../coordinator/agent-options'
import { ConfigError } from './args'

/** keysOf lists the keys of a type: every one of them, and no other, or it does not compile. */
function keysOf<T>(keys: Record<keyof T, true>): string[] {
  return Object.keys(keys)
}

const TLS = keysOf<TlsFiles>({ ca: true, cert: true, key: true })

const HOST = keysOf<NonNullable<AgentOptions['host']>>({
  advertiseAddress: true,
  tickMs: true,
  electionTicks: true,
  heartbeatTicks: true,
  workers: true,
  maxProposalBytes: true,
  snapshotEntries: true,
  compactionOverhead: true,
  fsync: true,
  maxInFlight: true,
  maxInFlightPerShard: true,
  maxSessionsPerShard: true,
  tls: true,
  quiesce: true,
  logger: true,
})

const HEALTH = keysOf<HostHealthOptions>({
  failures: true,
  openMs: true,
  maxOpenMs: true,
  minHedgeMs: true,
  maxHedgeMs: true,
})

const LIVENESS = keysOf<LivenessOptions>({ suspectMs: true, downMs: true })

/** ConfigKeys are the keys of a config file of its own (beside the AgentOptions). */
interface ConfigKeys {
  cluster: unknown
  peers: unknown
  stateMachines: unknown
  logLevel: unknown
}

const TOP = keysOf<AgentOptions & ConfigKeys>({
  cluster: true,
  peers: true,
  stateMachines: true,
  logLevel: true,
  dataDir: true,
  apiAddress: true,
  raftAddress: true,
  httpAddress: true,
  tags: true,
  logger: true,
  metrics: true,
  timeoutMs: true,
  reconcileMs: true,
  host: true,
  shardController: true,
  tls: true,
  insecure: true,
  health: true,
  keepaliveMs: true,
  singleHost: true,
  joinToken: true,
  liveness: true,
  replaceAfterMs: true,
  changesPerSecond: true,
  registryVoters: true,
  balanceLeaders: true,
  rebalance: true,
  rebalanceThreshold: true,
})

/** NESTED are the objects checked inside a config, by their path, with their keys. */
const NESTED: Array<[string[], string[]]> = [
  [['tls'], TLS],
  [['host'], HOST],
  [['host', 'tls'], TLS],
  [['health'], HEALTH],
  [['liveness'], LIVENESS],
]

/**
 * checkKeys refuses (ConfigError) a config with a key it does not know, at its top or in one
 * of the objects it nests; the maps of names (`tags`, `stateMachines`) take any key.
 */
export function checkKeys(config: object, file: string): void {
  check(config, TOP, 'the known keys', file)
  for (const [path, keys] of NESTED) {
    const v = path.reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), config)
    const name = path.join('.')
    if (isObject(v)) check(v, keys, `the known keys of ${name}`, file, `${name}.`)
  }
}

function check(o: object, keys: string[], what: string, file: string, prefix = ''): void {
  const unknown = Object.keys(o).filter((k) => !keys.includes(k))
  if (unknown.length === 0) return
  const names = unknown.map((k) => JSON.stringify(`${prefix}${k}`)).join(', ')
  const many = unknown.length > 1 ? 's' : ''
  throw new ConfigError(`config ${file}: unknown key${many} ${names} (${what}: ${keys.join(', ')})`)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
