import * as grpc from '@grpc/grpc-js'
import { copyFileSync, readFileSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  Agent,
  createCertificateAuthority,
  createHostCertificate,
  type Pem,
  type TlsFiles,
  writeHostFiles,
} from '../ts/index'
import { BusClient } from '../ts/bus/client'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { ChildClient, closedBy, codeOf, freePort, TempDirs, text } from './helpers'

// The security matrix: three agents in processes of their own, over mutual TLS on the bus and
// the Raft transport, and callers who must not get in. Each is refused with a clear error and
// changes nothing; members and a host with a join token get in.

const FIXTURE = join(__dirname, '..', 'harness', 'agent-process.mjs')
const CLUSTER = 'secure'
const dirs = new TempDirs('zongzi-security-')
const children: ChildClient[] = []
const agents: Agent[] = []

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.stop()))
  for (const c of children) c.kill()
  dirs.removeAll()
})

/** Member is an agent in a child process: its ids, addresses and TLS files. */
interface Member {
  client: ChildClient
  hostId: string
  apiAddress: string
  raftAddress: string
  tls: TlsFiles
}

const ca = createCertificateAuthority()
const fast = { host: { tickMs: 20 }, reconcileMs: 200 }

/** hostFiles writes TLS files for 127.0.0.1, signed by `by` (the cluster CA by default). */
const hostFiles = (by: Pem = ca, validDays?: number, names = ['127.0.0.1']): TlsFiles =>
  writeHostFiles(dirs.make(), by, createHostCertificate(by, names, { validDays }))

/** bus is a bus client with `tls` (none: plain TCP), naming itself `hostId`. */
function bus(tls: TlsFiles | 'none' | 'no-client-certificate', hostId = ''): BusClient {
  const read = (p: string) => readFileSync(p)
  const credentials =
    tls === 'none'
      ? grpc.credentials.createInsecure()
      : tls === 'no-client-certificate'
        ? grpc.credentials.createSsl(read(members[0].tls.ca))
        : grpc.credentials.createSsl(read(tls.ca), read(tls.key), read(tls.cert))
  const b = new BusClient(CLUSTER, { credentials, hostId: () => hostId })
  clients.push(b)
  return b
}
const clients: BusClient[] = []
afterAll(() => {
  for (const c of clients) c.close()
})

const members: Member[] = []
let shardId = 0
const registry = () => members[0].client.call<string>('registry')

/** memberRead reads key k as member 1 would, with its certificate, from member 0. */
async function memberRead(): Promise<string | undefined> {
  const m = members[1]
  const k = Buffer.from('k')
  return text(await bus(m.tls, m.hostId).read(members[0].apiAddress, shardId, k, false))
}

describe('a cluster over mutual TLS', () => {
  beforeAll(async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    await Promise.all(
      peers.map(async (apiAddress) => {
        const tls = hostFiles()
        const client = await ChildClient.start(FIXTURE)
        children.push(client)
        const options = { dataDir: dirs.make(), apiAddress, tls, ...fast }
        const ids = await client.call<Omit<Member, 'client' | 'tls'>>('start', {
          cluster: CLUSTER,
          peers,
          options,
          types: ['kv'],
        })
        members.push({ client, tls, ...ids })
      }),
    )
    const first = members[0].client
    shardId = await first.call<number>('createShard', {
      type: 'kv',
      placement: { members: { count: 3 } },
    })
    await first.call('waitForShard', { shardId })
    await first.call('propose', { shardId, key: 'k', value: 'v' })
  }, 120_000)

  it('serves a member calling with its own certificate', async () => {
    expect(await memberRead()).toBe('v')
  })

  it('refuses connections without a certificate it trusts, before any request', async () => {
    const before = await registry()
    const other = createCertificateAuthority()
    const m = members[0]
    const refusals = {
      'no TLS': bus('none', m.hostId),
      'no client certificate': bus('no-client-certificate', m.hostId),
      'a certificate of another CA': bus({ ...hostFiles(other), ca: m.tls.ca }, m.hostId),
      'an expired certificate': bus(hostFiles(ca, -1), m.hostId),
    }
    for (const [what, b] of Object.entries(refusals)) {
      const code = await codeOf(b.read(members[1].apiAddress, shardId, Buffer.from('k'), false))
      expect(code, what).toBe('ERR_UNAVAILABLE')
      expect(await codeOf(b.probe(members[1].apiAddress)), what).toBe('ERR_UNAVAILABLE')
    }
    // The wrong name: a member's certificate names 127.0.0.1, not localhost.
    const port = members[1].apiAddress.split(':')[1]
    const wrongName = bus(m.tls, m.hostId)
    expect(await codeOf(wrongName.probe(`localhost:${port}`))).toBe('ERR_UNAVAILABLE')
    expect(await registry()).toBe(before)
  })

  it('refuses a valid certificate of a non-member, whoever it claims to be', async () => {
    const before = await registry()
    const outsider = hostFiles()
    const target = members[0].apiAddress
    for (const claim of ['', 'made-up-host', members[1].hostId, members[0].hostId]) {
      const b = bus(outsider, claim)
      // Each call starts when it is awaited: none may fail unwatched.
      const calls = {
        read: () => b.read(target, shardId, Buffer.from('k'), false),
        propose: () => b.propose(target, shardId, set('k', 'stolen')),
        index: () => b.index(target, shardId),
        addReplica: () =>
          b.addReplica(target, {
            shardId,
            replicaId: 999,
            raftAddress: '127.0.0.1:1',
            nonVoting: false,
          }),
        removeReplica: () => b.removeReplica(target, { shardId, replicaId: 999 }),
      }
      for (const [what, call] of Object.entries(calls))
        expect(await codeOf(call), `${what} as ${claim || 'nobody'}`).toBe('ERR_UNAUTHENTICATED')
      const watched = (async () => {
        for await (const _ of b.watch(target, shardId, Buffer.from('k'))) return 'answered'
      })()
      expect(await codeOf(watched)).toBe('ERR_UNAUTHENTICATED')
    }
    // Probe is open: it tells who a host is, and nothing of the shards.
    expect((await bus(outsider).probe(target)).hostId).toBe(members[0].hostId)
    expect(await registry()).toBe(before)
  })

  it('refuses a join with no token, or a used, expired or forged one', async () => {
    const first = members[0].client
    const used = await first.call<string>('joinToken', { ttlMs: 60_000 })
    const joiner = await startJoiner(used)
    await joiner.stop()
    const before = await registry()
    const expired = await first.call<string>('joinToken', { ttlMs: 1 })
    const [head, body] = used.split('.')
    const forged = `${head}.${body}.${Buffer.alloc(32, 7).toString('base64url')}`
    const b = bus(hostFiles())
    const join = (token: string, hostId = 'newcomer') =>
      b.join(members[1].apiAddress, {
        hostId,
        raftAddress: '127.0.0.1:1',
        apiAddress: '127.0.0.1:2',
        token,
        tags: {},
      })
    for (const token of ['', used, expired, forged, 'zzjoin1.e30.AAAA'])
      expect(await codeOf(join(token)), token).toBe('ERR_UNAUTHENTICATED')
    expect(await registry()).toBe(before)
  })

  it("refuses a join that takes over a voter's host id, and no member moves", async () => {
    const before = await registry()
    const token = await members[0].client.call<string>('joinToken', { ttlMs: 60_000 })
    const outsider = bus(hostFiles())
    // Probe tells anyone the initial hosts' ids; a certificate of the cluster CA and a fresh
    // token are all the attacker has besides.
    const { initialHosts } = await outsider.probe(members[0].apiAddress)
    const victim = initialHosts.find((id) => id !== members[0].hostId) ?? ''
    expect(members.map((m) => m.hostId)).toContain(victim)
    const join = (hostId: string) =>
      outsider.join(members[0].apiAddress, {
        hostId,
        raftAddress: `127.0.0.1:${members[0].raftAddress.split(':')[1]}`,
        apiAddress: '127.0.0.1:2',
        token,
        tags: {},
      })
    for (const hostId of initialHosts)
      expect(await codeOf(join(hostId)), hostId).toBe('ERR_UNAUTHENTICATED')
    expect(await registry()).toBe(before)
    expect(await memberRead()).toBe('v')
    // The token was not spent: a new host may still use it.
    const joiner = await startJoiner(token)
    expect(joiner.status).toBe('ready')
    await joiner.stop({ drain: true })
  })

  it('refuses a bad join before proposing anything to the registry', async () => {
    const first = members[0].client
    const expired = await first.call<string>('joinToken', { ttlMs: 1 })
    const valid = await first.call<string>('joinToken', { ttlMs: 60_000 })
    const [head, body] = valid.split('.')
    const forged = `${head}.${body}.${Buffer.alloc(32, 7).toString('base64url')}`
    const b = bus(hostFiles())
    const join = (token: string, hostId: string) =>
      b.join(members[1].apiAddress, {
        hostId,
        raftAddress: '127.0.0.1:1',
        apiAddress: '127.0.0.1:2',
        token,
        tags: {},
      })
    const attempts: Array<[string, string]> = [
      ['', 'newcomer'],
      [expired, 'newcomer'],
      [forged, 'newcomer'],
      ['x'.repeat(1 << 20), 'newcomer'],
      [valid, members[2].hostId],
    ]
    // Other writes may happen meanwhile (a leader's record, say): a quiet try is enough.
    const quiet = async () => {
      const index = await first.call<number>('registryIndex')
      for (const [token, hostId] of attempts)
        expect(await codeOf(join(token, hostId))).toBe('ERR_UNAUTHENTICATED')
      return (await first.call<number>('registryIndex')) === index
    }
    let wrote = 0
    for (let i = 0; i < 3 && !(await quiet()); i++) wrote++
    expect(wrote).toBeLessThan(3)
  })

  it('refuses a change of the registry membership over the bus, even from a member', async () => {
    const before = await registry()
    const m = members[2]
    const b = bus(m.tls, m.hostId)
    const target = members[0].apiAddress
    const change = { shardId: 0, replicaId: 2, raftAddress: '127.0.0.1:1', nonVoting: true }
    expect(await codeOf(b.addReplica(target, change))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(b.removeReplica(target, { shardId: 0, replicaId: 2 }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await registry()).toBe(before)
    expect(await memberRead()).toBe('v')
  })

  it('admits nobody with a token made before the join key was rotated', async () => {
    const first = members[0].client
    const old = await first.call<string>('joinToken', { ttlMs: 60_000 })
    await first.call('rotateJoinKey')
    const before = await registry()
    const b = bus(hostFiles())
    const join = b.join(members[1].apiAddress, {
      hostId: 'rotated-out',
      raftAddress: '127.0.0.1:1',
      apiAddress: '127.0.0.1:2',
      token: old,
      tags: {},
    })
    expect(await codeOf(join)).toBe('ERR_UNAUTHENTICATED')
    expect(await registry()).toBe(before)
    const joiner = await startJoiner(await first.call<string>('joinToken', { ttlMs: 60_000 }))
    expect(joiner.status).toBe('ready')
    await joiner.stop({ drain: true })
  })

  it('refuses a raw write to the registry, even from a member', async () => {
    const before = await registry()
    const m = members[2]
    const drop = Buffer.from(JSON.stringify({ op: 'shard.delete', id: shardId }))
    const b = bus(m.tls, m.hostId)
    expect(await codeOf(b.propose(members[0].apiAddress, 0, drop))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(b.commit(members[1].apiAddress, 0, drop))).toBe('ERR_INVALID_ARGUMENT')
    expect(await registry()).toBe(before)
  })

  it('closes a Raft connection that forges a frame without a trusted certificate', async () => {
    const before = await registry()
    const [host, port] = members[0].raftAddress.split(':')
    // Whole records, so that the server need not wait for more bytes to refuse them.
    const frame = Buffer.concat([Buffer.from([0x17, 3, 3, 0, 59]), Buffer.alloc(59, 0xab)])
    const plain = tcpConnect(Number(port), host)
    expect(await closedBy(plain, frame)).toBe(true)
    const stranger = hostFiles(createCertificateAuthority())
    const tls = tlsConnect({
      host,
      port: Number(port),
      ca: readFileSync(members[0].tls.ca),
      cert: readFileSync(stranger.cert),
      key: readFileSync(stranger.key),
      servername: 'localhost',
      checkServerIdentity: () => undefined,
    })
    expect(await closedBy(tls, frame)).toBe(true)
    tls.destroy()
    expect(await registry()).toBe(before)
    expect(await memberRead()).toBe('v')
  })

  it('lets a host in with a token, and follows its renewed certificate', async () => {
    const token = await members[0].client.call<string>('joinToken', { ttlMs: 60_000 })
    // The joiner's files live where we can renew them; `original` keeps the first pair.
    const original = hostFiles()
    const live = { ...original, cert: join(dirs.make(), 'host.pem'), key: join(dirs.make(), 'k') }
    copyFileSync(original.cert, live.cert)
    copyFileSync(original.key, live.key)
    const joiner = await startJoiner(token, live)
    const c = joiner.client(shardId)
    expect(text(await c.read(Buffer.from('k')))).toBe('v')
    // Renew: a new key and certificate in the same files, then reload.
    const renewed = hostFiles()
    copyFileSync(renewed.cert, live.cert)
    copyFileSync(renewed.key, live.key)
    await joiner.reloadTls()
    const read = (b: BusClient) => b.read(members[0].apiAddress, shardId, Buffer.from('k'), false)
    expect(await codeOf(read(bus(original, joiner.hostId)))).toBe('ERR_UNAUTHENTICATED')
    expect(text(await read(bus(renewed, joiner.hostId)))).toBe('v')
    expect(text(await c.read(Buffer.from('k')))).toBe('v')
    await joiner.stop()
  })
  it('keeps calling other hosts while it switches to a renewed certificate', async () => {
    const token = await members[0].client.call<string>('joinToken', { ttlMs: 60_000 })
    const original = hostFiles()
    const live = { ...original, cert: join(dirs.make(), 'host.pem'), key: join(dirs.make(), 'k') }
    copyFileSync(original.cert, live.cert)
    copyFileSync(original.key, live.key)
    const joiner = await startJoiner(token, live)
    const c = joiner.client(shardId) // it runs no replica of the shard: each read is a bus call
    expect(text(await c.read(Buffer.from('k')))).toBe('v')
    const renewed = hostFiles()
    copyFileSync(renewed.cert, live.cert)
    copyFileSync(renewed.key, live.key)
    // The registry cannot hear from the joiner for a while (its Raft messages are dropped), so
    // its new certificate is not on record yet: its calls must still be let in meanwhile.
    joiner.cutLinks(members.map((m) => m.raftAddress))
    const reloaded = joiner.reloadTls()
    const codes: string[] = []
    for (let i = 0; i < 20; i++) {
      const e = await c.read(Buffer.from('k'), { stale: true }).then(
        () => undefined,
        (x) => x,
      )
      if (e) codes.push(e.code)
    }
    joiner.cutLinks([])
    await reloaded
    expect(codes).toEqual([])
    const read = (b: BusClient) => b.read(members[0].apiAddress, shardId, Buffer.from('k'), false)
    expect(text(await read(bus(renewed, joiner.hostId)))).toBe('v')
    expect(await codeOf(read(bus(original, joiner.hostId)))).toBe('ERR_UNAUTHENTICATED')
    expect(text(await c.read(Buffer.from('k')))).toBe('v')
    await joiner.stop({ drain: true })
  })
})

/** startJoiner starts an agent in this process that joins with `token`. */
async function startJoiner(token: string, tls = hostFiles()): Promise<Agent> {
  const peers = members.map((m) => m.apiAddress)
  const a = new Agent(CLUSTER, peers, { dataDir: dirs.make(), tls, joinToken: token, ...fast })
  a.register('kv', () => new KvStateMachine())
  agents.push(a)
  await a.start()
  return a
}
