import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import {
  createCertificateAuthority,
  createHostCertificate,
  Host,
  type HostOptions,
  type Pem,
  type TlsFiles,
  writeHostFiles,
} from '../ts/index'
import { Kv, put } from './fixtures/kv.mjs'
import {
  agreedLeader,
  codeOf,
  replicaId as rid,
  retry,
  sleep,
  TempDirs,
  text,
  waitUntil,
} from './helpers'

// Mutual TLS on the Raft transport, from TypeScript: certificates made by the package, hosts
// of one CA replicate, and a host whose certificate the others must refuse gets nothing.

const CLUSTER = 14
const dirs = new TempDirs('zongzi-tls-')
const hosts: Host[] = []

function open(tls: TlsFiles | undefined): Host {
  const opts: HostOptions = { clusterId: CLUSTER, dataDir: dirs.make(), tickMs: 10, tls }
  const h = Host.open(opts)
  hosts.push(h)
  return h
}

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

/** files writes a host's TLS files: a certificate for 127.0.0.1 signed by `ca`. */
function files(ca: Pem, validDays?: number): TlsFiles {
  return writeHostFiles(dirs.make(), ca, createHostCertificate(ca, ['127.0.0.1'], { validDays }))
}

/**
 * twoAndOutsider bootstraps a shard on three hosts whose third cannot be trusted, and checks
 * that the first two serve it while the third never learns a thing.
 */
async function twoAndOutsider(outsider: TlsFiles): Promise<void> {
  const ca = createCertificateAuthority()
  const hs = [open(files(ca)), open(files(ca)), open(outsider)]
  const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
  await Promise.all(
    hs.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, () => new Kv())),
  )
  const pair = hs.slice(0, 2)
  const leader = await waitUntil(async () =>
    agreedLeader(await Promise.all(pair.map((h) => h.status(1)))),
  )
  await retry(() => hs[leader].propose(1, put('a', '1')))
  for (const h of pair) expect(text(await retry(() => h.read(1, Buffer.from('a'))))).toBe('1')
  await sleep(300)
  const st = await hs[2].status(1)
  expect(st.leaderId, 'the outsider heard from a leader').toBe(0)
  expect(st.applied, 'the outsider applied entries').toBeLessThanOrEqual(1)
  expect(text(await hs[2].read(1, Buffer.from('a'), { stale: true }))).not.toBe('1')
}

/** certs runs the zongzi-certs command of the build. */
function certs(args: string[]): { status: number | null; stderr: string } {
  const cli = join(__dirname, '..', 'dist', 'cli', 'certs.js')
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr }
}

describe('mutual TLS on the Raft transport', () => {
  it('zongzi-certs makes the files hosts use, and signs more hosts with the same CA', async () => {
    const [out, more] = [dirs.make(), dirs.make()]
    expect(certs(['--out', out, '--hosts', '127.0.0.1']).status).toBe(0)
    expect(certs(['--out', more, '--ca', out, '--hosts', '127.0.0.1']).status).toBe(0)
    const tls = (d: string): TlsFiles => {
      const h = join(d, '127.0.0.1')
      return { ca: join(h, 'ca.pem'), cert: join(h, 'host.pem'), key: join(h, 'host.key') }
    }
    const hs = [open(tls(out)), open(tls(out)), open(tls(more))]
    const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
    await Promise.all(
      hs.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, () => new Kv())),
    )
    const leader = await waitUntil(async () =>
      agreedLeader(await Promise.all(hs.map((h) => h.status(1)))),
    )
    await retry(() => hs[leader].propose(1, put('a', 'signed later')))
    for (const h of hs)
      expect(text(await retry(() => h.read(1, Buffer.from('a'))))).toBe('signed later')
    // Bad usage, and a second CA over the first, are refused.
    expect(certs(['--hosts', '127.0.0.1']).status).toBe(2)
    expect(certs(['--out', out, '--hosts', 'h']).stderr).toMatch(/exists/)
  })

  it('hosts of the cluster CA replicate; a host of another CA gets nothing', async () => {
    await twoAndOutsider(files(createCertificateAuthority()))
  })

  it('an expired certificate gets nothing either', async () => {
    const ca = createCertificateAuthority()
    await twoAndOutsider(files(ca, -1))
  })

  it('reloads certificate files without a restart; a host without TLS has none', async () => {
    const ca = createCertificateAuthority()
    const tls = files(ca)
    const h = open(tls)
    writeHostFiles(dirname(tls.ca), ca, createHostCertificate(ca, ['127.0.0.1']))
    expect(() => h.reloadTls()).not.toThrow()
    expect(await codeOf(() => open(undefined).reloadTls())).toBe('ERR_INVALID_ARGUMENT')
  })

  it('refuses a host certificate without a name', async () => {
    const ca = createCertificateAuthority()
    expect(await codeOf(() => createHostCertificate(ca, []))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => createHostCertificate({ cert: 'x', key: 'y' }, ['h']))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
  })
})
