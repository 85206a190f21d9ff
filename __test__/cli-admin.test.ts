// The zongzi command's actions against a running cluster of five agents: shards created and
// deleted, a leadership moved, hosts that are down replaced and removed, each seen through
// the agents' API; and their errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { BusClient } from '../ts/bus/client'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { zongzi } from './fixtures/zongzi-bin'
import { codeOf, CutProxy, waitUntil } from './helpers'

describe('the zongzi command, acting on the cluster', () => {
  let c: OpsCluster
  let at: string[]
  // Hosts 0, 1 and 3 are of pool p: a shard placed there has a replica on host 3.
  const pool = (i: number): Record<string, string> => ([0, 1, 3].includes(i) ? { pool: 'p' } : {})
  beforeAll(async () => {
    c = await opsCluster(
      'cliadmin',
      (i) => ({
        tags: { zone: `z${i}`, ...pool(i) },
        // Hosts down are missing within a second, and replaced only when asked; leaderships
        // and replicas stay where they are put.
        liveness: { suspectMs: 300, downMs: 1_000 },
        replaceAfterMs: 0,
        balanceLeaders: false,
        rebalance: false,
      }),
      2,
    )
    at = ['--api', c.peers[0], '--cluster', 'cliadmin']
  }, 90_000)
  afterAll(() => c?.stop())

  const a0 = () => c.agents[0]
  const shardNamed = (name: string) => a0().findShard(name)

  it('creates a shard with its type, replicas and tags, and deletes it', async () => {
    const r = await zongzi([
      'shard',
      'create',
      'carts',
      '--replicas',
      '2',
      '--tags',
      'team=a',
      ...at,
    ])
    expect([r.code, r.err]).toEqual([0, ''])
    const sh = await shardNamed('carts')
    expect(sh).toMatchObject({ type: 'kv', tags: { team: 'a' } })
    expect(sh?.placement).toEqual({ members: { count: 2 } })
    expect(r.out).toBe(`created shard ${sh?.id}: carts (kv)\n`)
    await a0().waitForShard(sh?.id as number)
    expect(a0().stateLocal((s) => s.replicasOf(sh?.id as number))).toHaveLength(2)

    // Again: the shard is there; --placement and --json.
    const again = await zongzi(['shard', 'create', 'carts', '--type', 'kv', ...at])
    expect(again.out).toBe(`shard exists ${sh?.id}: carts (kv)\n`)
    const placement = JSON.stringify({ members: { count: 1, tags: { zone: 'z2' } } })
    const j = await zongzi(['shard', 'create', 'z2only', '--placement', placement, '--json', ...at])
    const made = JSON.parse(j.out)
    expect(made).toMatchObject({ action: 'shard.create', ok: true, created: true })
    expect(made.shard).toMatchObject({ id: made.shardId, name: 'z2only' })
    expect(made.shard.placement).toEqual(JSON.parse(placement))
    const dj = await zongzi(['shard', 'delete', String(made.shardId), '--json', ...at])
    expect([dj.code, dj.err]).toEqual([0, ''])
    expect(JSON.parse(dj.out)).toEqual({ action: 'shard.delete', ok: true, shardId: made.shardId })

    const d = await zongzi(['shard', 'delete', String(sh?.id), ...at])
    expect([d.code, d.out]).toEqual([0, `deleted shard ${sh?.id}\n`])
    // It is being deleted at once, and gone once its replicas are.
    expect((await shardNamed('carts'))?.status ?? 'gone').toMatch(/deleting|gone/)
    await waitUntil(async () => (await shardNamed('carts')) === undefined, { what: 'carts gone' })
  }, 60_000)

  it('refuses to delete or lead a shard that does not exist (exit 1)', async () => {
    const d = await zongzi(['shard', 'delete', '9999', ...at])
    expect(d.code).toBe(1)
    expect(d.err).toMatch(/^zongzi: ERR_SHARD_NOT_FOUND: shard 9999/)
    const host = a0().hostId.slice(0, 8)
    const t = await zongzi(['leader', 'transfer', '9999', host, ...at])
    expect(t.code).toBe(1)
    expect(t.err).toMatch(/^zongzi: ERR_SHARD_NOT_FOUND: shard 9999/)
    const zero = await zongzi(['shard', 'delete', '0', ...at])
    expect(zero.err).toMatch(/^zongzi: ERR_SHARD_NOT_FOUND/)
    // With --json: the same exit code, and one error object on stderr.
    const j = await zongzi(['leader', 'transfer', '9999', host, '--json', ...at])
    expect([j.code, j.out]).toEqual([1, ''])
    expect(JSON.parse(j.err)).toEqual({
      action: 'leader.transfer',
      ok: false,
      code: 'ERR_SHARD_NOT_FOUND',
      message: expect.stringMatching(/^shard 9999/),
      exitCode: 1,
    })
  })

  it("moves a shard's leadership to the host named", async () => {
    const sh = await a0().createShard('kv', { name: 'led', placement: { members: { count: 3 } } })
    await a0().waitForShard(sh.id)
    const holders = a0().stateLocal((s) => s.replicasOf(sh.id))
    const leaderOf = async () => {
      const host = c.agents.find((a) => a.hostId === holders[0].hostId)
      const st = await host?.replicaStatus(sh.id)
      return st?.leaderId ? holders.find((r) => r.id === st.leaderId) : undefined
    }
    const leader = await waitUntil(leaderOf, { what: 'a leader' })
    const target = holders.find((r) => r.id !== leader.id)
    if (!target) throw new Error('no other replica')
    const r = await zongzi(['leader', 'transfer', String(sh.id), target.hostId, '--json', ...at])
    expect([r.code, r.err]).toEqual([0, ''])
    const led = { action: 'leader.transfer', ok: true, shardId: sh.id, hostId: target.hostId }
    expect(JSON.parse(r.out)).toEqual(led)
    const there = c.agents.find((a) => a.hostId === target.hostId)
    expect((await there?.replicaStatus(sh.id))?.leaderId).toBe(target.id)
    // A host without a replica of the shard cannot lead it.
    const outside = c.agents.find((a) => !holders.some((r) => r.hostId === a.hostId))
    const no = await zongzi(['leader', 'transfer', String(sh.id), String(outside?.hostId), ...at])
    expect(no.code).toBe(1)
    expect(no.err).toMatch(/ERR_INVALID_ARGUMENT: .*has no voting replica of shard/)
    // Gone before hosts stop in the next test: it may have two replicas on them.
    await a0().deleteShard(sh.id)
  }, 60_000)

  it('replaces and removes hosts that are down, and refuses hosts that are up', async () => {
    const up = await zongzi(['host', 'remove', c.agents[2].hostId, ...at])
    expect(up.code).toBe(1)
    expect(up.err).toMatch(/^zongzi: ERR_INVALID_ARGUMENT: .*host [\w-]+ is up/)

    // A shard of pool p has a replica on host 3; its placement then lets it go anywhere.
    const sh = await a0().createShard('kv', {
      name: 'pinned',
      placement: { members: { count: 3, tags: { pool: 'p' } } },
    })
    await a0().waitForShard(sh.id)
    await a0().updateShard(sh.id, { placement: { members: { count: 3 } } })
    const [h3, h4] = [c.agents[3].hostId, c.agents[4].hostId]
    const hostsOf = () => a0().stateLocal((s) => s.replicasOf(sh.id).map((r) => r.hostId))
    expect(hostsOf()).toContain(h3)

    await Promise.all([c.agents[3].stop(), c.agents[4].stop()])
    const statusOf = (id: string) => a0().stateLocal((s) => s.hosts.get(id)?.status)
    await waitUntil(() => statusOf(h3) === 'missing' && statusOf(h4) === 'missing', {
      what: 'hosts 3 and 4 missing',
    })
    const rep = await zongzi(['host', 'replace', h3.slice(0, 10), ...at])
    expect([rep.code, rep.err, rep.out]).toEqual([0, '', `replacing the replicas of ${h3}\n`])
    await waitUntil(
      () => {
        const rs = a0().stateLocal((s) => s.replicasOf(sh.id))
        return rs.length === 3 && rs.every((r) => r.hostId !== h3 && r.status === 'active')
      },
      { what: "host 3's replica replaced" },
    )
    expect(statusOf(h3)).toBe('missing') // it keeps its id

    const rem = await zongzi(['host', 'remove', h4.slice(0, 10), '--json', ...at])
    expect([rem.code, rem.err]).toEqual([0, ''])
    expect(JSON.parse(rem.out)).toEqual({ action: 'host.remove', ok: true, hostId: h4 })
    expect(await a0().state((s) => s.hosts.get(h4)?.status)).toBe('gone')
  }, 90_000)

  it('says what is wrong with bad arguments, and exits 2', async () => {
    for (const args of [
      ['shard', ...at],
      ['shard', 'create', ...at],
      ['shard', 'create', 'x', '--replicas', '2', '--placement', '{}', ...at],
      ['shard', 'create', 'x', '--placement', 'three', ...at],
      ['shard', 'create', 'x', '--replicas', 'two', ...at],
      ['shard', 'create', 'x', '--tags', 'team', ...at],
      ['shard', 'delete', 'abc', ...at],
      ['shard', 'delete', '1', '2', ...at],
      ['host', 'frob', 'x', ...at],
      ['host', 'remove', ...at],
      ['host', 'remove', 'nobody', ...at],
      ['host', 'drain', 'nobody', ...at],
      ['leader', 'transfer', '1', ...at],
      ['leader', 'transfer', '1', 'nobody', ...at],
      ['status', '--bogus', ...at],
      ['agent'],
    ]) {
      const r = await zongzi(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err).toMatch(/^zongzi: .+\nusage: zongzi/)
    }
    // With --json, an error object without the usage.
    for (const args of [
      ['host', 'remove', 'nobody'],
      ['shard', 'delete', 'x', '--bogus'],
    ]) {
      const r = await zongzi([...args, '--json', ...at])
      expect(r.code, args.join(' ')).toBe(2)
      const e = JSON.parse(r.err)
      expect(e).toMatchObject({ ok: false, code: 'ERR_USAGE', exitCode: 2 })
      expect(e.message).toMatch(/no host match nobody|Unknown option '--bogus'/)
    }
  }, 60_000)

  it('exits 3 when the agent at --api cannot be reached', async () => {
    for (const args of [
      ['shard', 'delete', '1'],
      ['host', 'remove', 'x'],
      ['leader', 'transfer', '1', 'x'],
    ]) {
      const r = await zongzi([...args, '--api', '127.0.0.1:1', '--cluster', 'cliadmin'])
      expect(r.code, args.join(' ')).toBe(3)
      expect(r.err).toMatch(/^zongzi: ERR_UNAVAILABLE/)
    }
    // An agent that takes the connection and says nothing is as unreachable.
    const silent = await CutProxy.start(c.peers[0])
    silent.cut()
    try {
      const at = ['--api', silent.address, '--cluster', 'cliadmin', '--timeout', '300']
      const r = await zongzi(['shard', 'delete', '1', ...at])
      expect(r.code).toBe(3)
      expect(r.err).toMatch(/^zongzi: ERR_UNAVAILABLE: 127\.0\.0\.1:\d+ did not answer/)
    } finally {
      await silent.close()
    }
  })

  it('serves Admin to members only, and refuses actions it does not know', async () => {
    const sh = await a0().createShard('kv', { name: 'kept' })
    const stray = new BusClient('cliadmin')
    const member = new BusClient('cliadmin', { hostId: () => c.agents[1].hostId })
    try {
      const del = { op: 'shard.delete', shardId: sh.id }
      expect(await codeOf(stray.admin(c.peers[0], del))).toBe('ERR_UNAUTHENTICATED')
      expect((await shardNamed('kept'))?.status).toMatch(/^(new|active)$/)
      for (const bad of [{ op: 'shard.frob' }, 'x', { op: 'shard.create', type: 'kv' }])
        expect(await codeOf(member.admin(c.peers[0], bad))).toBe('ERR_INVALID_ARGUMENT')
    } finally {
      stray.close()
      member.close()
    }
  })
})
