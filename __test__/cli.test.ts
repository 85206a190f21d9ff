import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type { ClusterStatus, RegistryChange } from '../ts/index'
import { createCertificateAuthority, createHostCertificate, writeHostFiles } from '../ts/index'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { until, zongzi } from './fixtures/zongzi-bin'
import { TempDirs, waitUntil } from './helpers'

describe('the zongzi command', () => {
  let c: OpsCluster
  let at: string[]
  let shardId = 0
  beforeAll(async () => {
    c = await opsCluster('cli', (i) => ({ tags: { zone: `z${i}`, role: 'api' } }), 1)
    at = ['--api', c.peers[1], '--cluster', 'cli']
    const sh = await c.agents[0].createShard('kv', {
      name: 'orders',
      placement: { members: { count: 3 } },
    })
    shardId = sh.id
    await c.agents[0].waitForShard(sh.id)
  }, 60_000)
  afterAll(() => c?.stop())

  it('shows the cluster, its hosts, shards and replicas as tables', async () => {
    const status = await zongzi(['status', ...at])
    expect(status.code).toBe(0)
    expect(status.out).toContain('4 hosts, 2 shards')
    const hosts = await zongzi(['hosts', ...at])
    expect(hosts.out.split('\n')[0]).toMatch(/^HOST\s+STATUS\s+API/)
    for (const a of c.agents) expect(hosts.out).toContain(a.hostId.slice(0, 8))
    expect(hosts.out).toContain('role=api')
    const shards = await zongzi(['shards', ...at])
    expect(shards.out).toMatch(new RegExp(`^${shardId}\\s+orders\\s+kv\\s+active`, 'm'))
    const replicas = await zongzi(['replicas', ...at])
    expect(replicas.out.split('\n').filter((l) => l.startsWith(`${shardId} `))).toHaveLength(3)
  })

  it('prints JSON with --json', async () => {
    const r = await zongzi(['status', ...at, '--json'])
    const s = JSON.parse(r.out) as ClusterStatus
    expect(s.hostId).toBe(c.agents[1].hostId)
    expect(s.shards.map((x) => x.name)).toContain('orders')
    const reps = JSON.parse((await zongzi(['replicas', ...at, '--json'])).out)
    expect(reps.filter((x: { shardId: number }) => x.shardId === shardId)).toHaveLength(3)
  })

  it('lists changes, and follows them', async () => {
    const r = await zongzi(['changes', ...at, '--json'])
    expect(r.code).toBe(0)
    const changes = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as RegistryChange)
    expect(changes.some((x) => x.op === 'shard.create' && x.command.name === 'orders')).toBe(true)
    const since = changes[changes.length - 1].index
    const tail = await zongzi(['changes', ...at, '--since', String(changes[1].index)])
    expect(tail.out.trim().split('\n')).toHaveLength(changes.length - 2)

    // --follow: a change made after it started shows up.
    const created = /shard\.create by \w{8}\s+shard \d+/
    const following = until(['changes', ...at, '--follow', '--since', String(since)], created)
    await c.agents[2].createShard('kv', { name: 'followed' })
    expect(await following).toMatch(created)
  }, 30_000)

  it('drains a host by id prefix (drain, as host drain) and undrains it (host undrain)', async () => {
    const target = c.agents[2]
    // Its replicas (of shard 0 and of orders) move to the fourth host.
    const r = await zongzi(['drain', target.hostId.slice(0, 8), ...at], 60_000)
    expect([r.code, r.err]).toEqual([0, ''])
    expect(r.out).toBe(`drained ${target.hostId}\n`)
    expect(target.stateLocal((s) => s.hosts.get(target.hostId)?.status)).toBe('draining')
    expect(target.stateLocal((s) => s.replicasOf(shardId).map((x) => x.hostId))).not.toContain(
      target.hostId,
    )
    const u = await zongzi(['host', 'undrain', target.hostId, '--json', ...at])
    expect([u.code, u.err]).toEqual([0, ''])
    expect(JSON.parse(u.out)).toEqual({ action: 'host.undrain', ok: true, hostId: target.hostId })
    await waitUntil(() => target.stateLocal((s) => s.hosts.get(target.hostId)?.status === 'active'))
  }, 90_000)

  it('says what is wrong with bad arguments, and exits 2', async () => {
    for (const args of [
      [],
      ['status'],
      ['status', '--api', c.peers[0]],
      ['nope', ...at],
      ['drain', ...at],
      ['drain', 'nobody', ...at],
      ['changes', '--since', 'x', ...at],
      ['status', '--tls-ca', 'ca.pem', ...at],
    ]) {
      const r = await zongzi(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err).toMatch(/^zongzi: .+\nusage: zongzi/)
    }
  })

  it('exits 3 when the agent cannot be reached or is of another cluster', async () => {
    const down = await zongzi(['status', '--api', '127.0.0.1:1', '--cluster', 'cli'])
    expect(down.code).toBe(3)
    expect(down.err).toMatch(/^zongzi: ERR_UNAVAILABLE/)
    const other = await zongzi(['status', '--api', c.peers[0], '--cluster', 'other'])
    expect(other.code).toBe(3)
    expect(other.err).toMatch(/^zongzi: ERR_CLUSTER_MISMATCH/)
    // With --json, the same exit code and an error object on stderr.
    const j = await zongzi(['status', '--json', '--api', '127.0.0.1:1', '--cluster', 'cli'])
    expect([j.code, j.out]).toEqual([3, ''])
    expect(JSON.parse(j.err)).toMatchObject({ action: 'status', ok: false, exitCode: 3 })
    expect(JSON.parse(j.err).code).toBe('ERR_UNAVAILABLE')
  })
})

describe('the zongzi command over TLS', () => {
  const dirs = new TempDirs('zongzi-cli-tls-')
  const ca = createCertificateAuthority()
  const files = [0, 1, 2, 3].map(() =>
    writeHostFiles(dirs.make(), ca, createHostCertificate(ca, ['127.0.0.1'])),
  )
  let c: OpsCluster
  beforeAll(async () => {
    c = await opsCluster('clitls', (i) => ({ tls: files[i] }))
  }, 60_000)
  afterAll(async () => {
    await c?.stop()
    dirs.removeAll()
  })
  const flags = (i: number) => ['--tls-ca', files[i].ca, '--tls-cert', files[i].cert]

  it("works with the TLS files of the host it calls, and not with another's", async () => {
    const at = ['--api', c.peers[0], '--cluster', 'clitls']
    const ok = await zongzi(['hosts', ...at, ...flags(0), '--tls-key', files[0].key])
    expect(ok.code).toBe(0)
    expect(ok.out).toContain(c.agents[0].hostId.slice(0, 8))
    const stranger = await zongzi(['hosts', ...at, ...flags(3), '--tls-key', files[3].key])
    expect(stranger.code).toBe(1)
    expect(stranger.err).toMatch(/^zongzi: ERR_UNAUTHENTICATED/)
    const plain = await zongzi(['hosts', ...at])
    expect(plain.code).toBe(3)
  })

  it("acts on the cluster with a member's TLS files only, as it reads it", async () => {
    const at = ['--api', c.peers[0], '--cluster', 'clitls']
    const create = ['shard', 'create', 'secured', '--type', 'kv', ...at]
    const stranger = await zongzi([...create, ...flags(3), '--tls-key', files[3].key])
    expect(stranger.code).toBe(1)
    expect(stranger.err).toMatch(/^zongzi: ERR_UNAUTHENTICATED/)
    expect(await c.agents[0].findShard('secured')).toBeUndefined()
    const ok = await zongzi([...create, ...flags(0), '--tls-key', files[0].key])
    expect([ok.code, ok.err]).toEqual([0, ''])
    const sh = await c.agents[1].findShard('secured')
    const del = ['shard', 'delete', String(sh?.id), ...at]
    const refused = await zongzi([...del, ...flags(3), '--tls-key', files[3].key])
    expect(refused.err).toMatch(/^zongzi: ERR_UNAUTHENTICATED/)
    expect((await c.agents[1].findShard('secured'))?.status).toMatch(/^(new|active)$/)
    const deleted = await zongzi([...del, ...flags(0), '--tls-key', files[0].key])
    expect([deleted.code, deleted.err]).toEqual([0, ''])
  })
})
