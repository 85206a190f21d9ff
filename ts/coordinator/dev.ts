// Development mode: what `Agent.dev()` and `Agent.devCluster(n)` set up — agents on loopback
// with their data in temporary directories that go when they stop.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { invalid } from '../binding/errors'
import type { AgentOptions, AgentStatus } from './agent-options'

/**
 * DevOptions configure an agent of development mode: the AgentOptions of an agent on
 * loopback (no TLS, no join token), each optional.
 */
export interface DevOptions
  extends Omit<
    AgentOptions,
    'dataDir' | 'apiAddress' | 'raftAddress' | 'tls' | 'insecure' | 'joinToken' | 'singleHost'
  > {
  /** The cluster's name (default `'dev'`). */
  clusterName?: string
  /**
   * The data directory, kept after the agent stops (a later `Agent.dev({ dataDir })` starts
   * from it). Default: a new temporary directory, removed once the agent has stopped.
   */
  dataDir?: string
}

/** MakeAgent constructs an Agent (the dev functions are given its constructor). */
export type MakeAgent<T> = (clusterName: string, peers: string[], options: AgentOptions) => T

/** devAgent is `Agent.dev` (see there): an agent alone, made by `make`. */
export function devAgent<T extends StatusEmitter>(o: DevOptions, make: MakeAgent<T>): T {
  return oneOf(o, [], undefined, make)
}

/** devCluster is `Agent.devCluster` (see there): `n` peers, made by `make`. */
export async function devCluster<T extends StatusEmitter>(
  n: number,
  o: DevOptions,
  make: MakeAgent<T>,
): Promise<T[]> {
  if (o === null || typeof o !== 'object') throw invalid('options must be an object')
  const peers = await loopbackPeers(n)
  return peers.map((address, i) => {
    const dataDir = o.dataDir === undefined ? undefined : join(o.dataDir, `agent-${i}`)
    return oneOf({ ...o, dataDir }, peers, address, make)
  })
}

/**
 * oneOf makes an agent of development mode, alone (`peers` empty) or one of `peers` on
 * `apiAddress`; a temporary data directory of its own goes once it has stopped.
 */
function oneOf<T extends StatusEmitter>(
  o: DevOptions,
  peers: string[],
  apiAddress: string | undefined,
  make: MakeAgent<T>,
): T {
  if (o === null || typeof o !== 'object') throw invalid('options must be an object')
  const { clusterName = 'dev', dataDir, ...rest } = o
  const temporary = dataDir === undefined ? mkdtempSync(join(tmpdir(), 'zongzi-dev-')) : undefined
  let agent: T
  try {
    agent = make(clusterName, peers, {
      // Quick elections and reconciling: one machine, nothing to wait for.
      reconcileMs: 200,
      ...rest,
      host: { tickMs: 20, ...rest.host },
      dataDir: dataDir ?? (temporary as string),
      apiAddress: apiAddress ?? '127.0.0.1:0',
      singleHost: peers.length <= 1,
    })
  } catch (e) {
    if (temporary !== undefined) rmSync(temporary, { recursive: true, force: true })
    throw e
  }
  if (temporary === undefined) return agent
  const onStatus = (s: AgentStatus) => {
    if (s !== 'stopped') return
    agent.off('status', onStatus)
    rmSync(temporary, { recursive: true, force: true })
  }
  agent.on('status', onStatus)
  return agent
}

/** StatusEmitter is the part of an Agent that development mode uses: its status events. */
export interface StatusEmitter {
  on(event: 'status', listener: (s: AgentStatus) => void): unknown
  off(event: 'status', listener: (s: AgentStatus) => void): unknown
}

/**
 * loopbackPeers returns `n` addresses on 127.0.0.1, each on a port free now. Ports are picked
 * at random below the kernel's usual ephemeral range (32768 and up), so that no `listen(0)`
 * (a Raft transport's, say) takes one between this check and the agent's listen.
 */
async function loopbackPeers(n: number): Promise<string[]> {
  if (!Number.isSafeInteger(n) || n < 1 || n > 64) throw invalid('n must be from 1 to 64')
  const ports = new Set<number>()
  while (ports.size < n) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (!ports.has(port) && (await free(port))) ports.add(port)
  }
  return [...ports].map((p) => `127.0.0.1:${p}`)
}

/** free resolves with whether `port` on 127.0.0.1 can be bound now. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}
