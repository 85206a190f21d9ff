import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  Agent,
  type AgentOptions,
  createCertificateAuthority,
  createHostCertificate,
  type Pem,
  type TlsFiles,
  writeHostFiles,
} from '../ts/index'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { freePort, sleep, TempDirs, text } from './helpers'

// Agents over mutual TLS on both channels, the bus and the Raft transport: a cluster of one
// CA works as without TLS, and an agent without a certificate of that CA never gets in.

const dirs = new TempDirs('zongzi-agent-tls-')
const agents: Agent[] = []
const fast = { host: { tickMs: 20 }, reconcileMs: 200 }

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  dirs.removeAll()
})

function files(ca: Pem): TlsFiles {
  return writeHostFiles(dirs.make(), ca, createHostCertificate(ca, ['127.0.0.1']))
}

describe('agents over mutual TLS', () => {
  const cluster = 'tls'
  const ca = createCertificateAuthority()
  const peers: string[] = []
  const make = (options: Partial<AgentOptions> = {}) => {
    const a = new Agent(cluster, peers, { dataDir: dirs.make(), ...fast, ...options })
    a.register('kv', () => new KvStateMachine())
    agents.push(a)
    return a
  }

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const initial = peers.map((apiAddress) => make({ apiAddress, tls: files(ca) }))
    await Promise.all(initial.map((a) => a.start()))
  })

  it('creates shards, writes and reads as without TLS', async () => {
    const [a, b] = agents
    const placement = { members: { count: 3 } }
    const shard = await a.createShard('kv', { name: 'secure', placement })
    await a.client(shard.id).propose(set('k', 'v'))
    expect(text(await b.client(shard.id).read(Buffer.from('k')))).toBe('v')
  })

  it('never lets in an agent without a certificate of the cluster CA', async () => {
    const hosts = () => agents[0].state((s) => s.hosts.size)
    const before = await hosts()
    // Even with a join token: the token is no use without the TLS handshake.
    const joinToken = await agents[0].createJoinToken()
    for (const tls of [undefined, files(createCertificateAuthority())]) {
      const outsider = make({ tls, joinToken })
      const started = outsider.start().catch(() => undefined)
      await sleep(1500)
      expect(outsider.status).toBe('starting')
      expect(await hosts()).toBe(before)
      await outsider.stop()
      await started
    }
  })
})
