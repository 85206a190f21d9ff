import { describe, expect, it } from 'vitest'

import { Agent, ERROR_TAG, ZongziError, type Placement } from '../ts/index'
import { BusClient } from '../ts/bus/client'
import { set } from '../examples/kv.mjs'
import { codeOf, sleep, text, waitUntil } from './helpers'
import { fast, sixAgents, tmp } from './fixtures/six-agents'

describe('a cluster of six agents (three peers, three joiners; two in child processes)', () => {
  const { cluster, peers, local, remotes, tokens, mk, state, hostIds, zone, tier } = sixAgents()

  it('has the peers as voters of shard 0 and the joiners as non-voting members', async () => {
    const reps = await state((s) =>
      s.replicasOf(0).map((r) => ({ host: hostIds.indexOf(r.hostId), nonVoting: r.nonVoting })),
    )
    expect(
      reps
        .filter((r) => !r.nonVoting)
        .map((r) => r.host)
        .sort(),
    ).toEqual([0, 1, 2])
    expect(
      reps
        .filter((r) => r.nonVoting)
        .map((r) => r.host)
        .sort(),
    ).toEqual([3, 4, 5])
    const m = await waitUntil(
      async () => {
        const st = await local[0].replicaStatus(0)
        return st.membership.nonVoters.length === 3 ? st.membership : undefined
      },
      { what: 'shard 0 membership' },
    )
    expect(m.voters).toHaveLength(3)
    expect(await state((s) => s.hosts.size)).toBe(6)
  })

  const shardIds: Record<string, number> = {}
  async function settled(id: number) {
    return waitUntil(
      () =>
        local[0].stateLocal((s) => {
          const rs = s.replicasOf(id)
          return rs.length > 0 && rs.every((r) => r.status === 'active') ? rs : undefined
        }),
      { what: `replicas of shard ${id}` },
    )
  }
  const hostOf = (hostId: string) => hostIds.indexOf(hostId)

  it('places replicas as each placement rule asks, only on hosts that run the type', async () => {
    const create = async (name: string, type: string, placement: Placement) => {
      shardIds[name] = (await local[0].createShard(type, { name, placement })).id
    }
    await create('spread', 'kv', { members: { count: 3 }, vary: ['zone'] })
    await create('groups', 'kv', {
      members: { count: 2, tags: { tier: 'core' } },
      groups: { read: { count: 2, tags: { tier: 'edge' } } },
    })
    await create('cover', 'kv', {
      members: { count: 1, tags: { zone: 'a', tier: 'core' } },
      cover: { tags: { tier: 'edge' } },
    })
    await create('special', 'special', { members: { count: 1 } })
    await create('impossible', 'kv', { members: { count: 7 } })

    const spread = await settled(shardIds.spread)
    expect(spread).toHaveLength(3)
    expect(spread.every((r) => !r.nonVoting)).toBe(true)
    expect(new Set(spread.map((r) => zone(hostOf(r.hostId)))).size).toBe(3)

    const groups = await settled(shardIds.groups)
    expect(groups.filter((r) => !r.nonVoting).map((r) => tier(hostOf(r.hostId)))).toEqual([
      'core',
      'core',
    ])
    expect(groups.filter((r) => r.nonVoting).map((r) => tier(hostOf(r.hostId)))).toEqual([
      'edge',
      'edge',
    ])

    const cover = await settled(shardIds.cover)
    expect(cover.filter((r) => !r.nonVoting).map((r) => hostOf(r.hostId))).toEqual([0])
    expect(
      cover
        .filter((r) => r.nonVoting)
        .map((r) => hostOf(r.hostId))
        .sort(),
    ).toEqual([3, 4, 5])

    const special = await settled(shardIds.special)
    expect(special.map((r) => hostOf(r.hostId))).toEqual([4])

    const err = await waitUntil(
      () => local[1].stateLocal((s) => s.shards.get(shardIds.impossible)?.tags[ERROR_TAG]),
      { what: 'placement error' },
    )
    expect(err).toMatch(/wants 7 hosts/)
    expect(local[1].stateLocal((s) => s.replicasOf(shardIds.impossible))).toHaveLength(0)
  })

  it('a client on any host serves apply, commit, read, index, watch and stream', async () => {
    const id = shardIds.spread
    const holders = new Set(
      local[0].stateLocal((s) => s.replicasOf(id).map((r) => hostOf(r.hostId))),
    )
    expect(holders.size).toBe(3)
    // In-process agents: the full API.
    for (const [i, a] of local.entries()) {
      const c = a.client(id)
      const r = await c.propose(set(`key${i}`, `v${i}`))
      expect(r.value).toBeGreaterThan(0)
      const idx = await c.commit(set(`c${i}`, 'x'))
      expect(await c.index()).toBeGreaterThanOrEqual(idx)
      expect(text(await c.read(Buffer.from(`key${i}`)))).toBe(`v${i}`)
      expect(c.leader().replicaId).toBeGreaterThan(0)
    }
    // Agents in child processes, with and without a local replica.
    for (const r of remotes) {
      expect(
        await r.call('propose', { shardId: id, key: 'remote', value: r.hostId }),
      ).toBeGreaterThan(0)
      expect(await r.call('read', { shardId: id, key: 'remote' })).toBe(r.hostId)
    }
    // watch and stream from a host with no replica of the shard go over the bus.
    const outsider = local.find((a) => !holders.has(hostIds.indexOf(a.hostId)))
    if (!outsider) throw new Error('every host has a replica of the shard')
    const ac = new AbortController()
    const seen: string[] = []
    const watching = (async () => {
      for await (const v of outsider.client(id).watch(Buffer.from('w'), { signal: ac.signal })) {
        seen.push(v.toString())
        if (seen.includes('3')) ac.abort()
      }
    })()
    await waitUntil(() => seen.length > 0, { what: 'first watch value' })
    for (const v of ['1', '2', '3']) await local[0].client(id).propose(set('w', v))
    await watching
    expect(seen.slice(-1)).toEqual(['3'])
    async function* keys() {
      yield Buffer.from('key0')
      yield Buffer.from('w')
    }
    const out: string[] = []
    for await (const v of outsider.client(id).stream(keys())) out.push(v.toString())
    expect(out).toEqual(['v0', '3'])
  })

  it('creates one shard when createShard runs concurrently with the same name', async () => {
    const made = await Promise.all(
      [local[0], local[1], local[2], local[3]].map((a) =>
        a.createShard('kv', { name: 'dup', placement: { members: { count: 3 } } }),
      ),
    )
    expect(new Set(made.map((s) => s.id)).size).toBe(1)
    expect(await state((s) => [...s.shards.values()].filter((x) => x.name === 'dup').length)).toBe(
      1,
    )
  })

  it('serves a new shard at once through agents other than the one that created it', async () => {
    // The other agents' registry replicas may not have applied the creation yet: their clients
    // catch up with the registry instead of calling the shard unknown.
    for (let i = 0; i < 5; i++) {
      const sh = await local[i % 2].createShard('kv', { placement: { members: { count: 3 } } })
      const [a, b] = await Promise.all([
        local[1 - (i % 2)].client(sh.id).propose(set('k', `v${i}`)),
        local[2].client(sh.id).read(Buffer.from('k')),
      ])
      expect(a.value).toBe(1)
      expect(['', `v${i}`]).toContain(text(b))
      // The watch ends once it sees the write (the test's timeout bounds it).
      for await (const v of local[3].client(sh.id).watch(Buffer.from('k')))
        if (text(v) === `v${i}`) break
      await local[0].deleteShard(sh.id)
      await waitUntil(() => local[0].stateLocal((s) => !s.shards.has(sh.id)), {
        what: `shard ${sh.id} gone`,
      })
    }
  })

  it('rejects bad input with typed errors and changes nothing', async () => {
    const before = await state((s) => ({ shards: s.shards.size, replicas: s.replicas.size }))
    const a = local[1]
    expect(await codeOf(() => a.client(999).propose(set('k', 'v')))).toBe('ERR_SHARD_NOT_FOUND')
    expect(await codeOf(() => a.createShard('kv', { tags: { x: 1 as unknown as string } }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(() => a.createShard('kv', { placement: { members: { count: -1 } } }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(
      await codeOf(() =>
        a.createShard('kv', {
          placement: { members: { count: 1 }, vary: 'zone' } as unknown as Placement,
        }),
      ),
    ).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => a.createShard(''))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => a.updateShard(999, { tags: {} }))).toBe('ERR_SHARD_NOT_FOUND')
    expect(await codeOf(() => a.client(shardIds.spread).propose(Buffer.alloc(9 << 20)))).toBe(
      'ERR_PAYLOAD_TOO_LARGE',
    )
    expect(
      await codeOf(() => a.client(shardIds.spread).propose('text' as unknown as Uint8Array)),
    ).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => a.client(-1))).toBe('ERR_INVALID_ARGUMENT')
    expect(() => new Agent(cluster, peers.slice(0, 2), { dataDir: tmp() })).toThrow(
      /at least three/,
    )
    // Off loopback without TLS only when told the network is trusted.
    for (const o of [{ apiAddress: '0.0.0.0:0' }, { raftAddress: '[::]:0' }]) {
      expect(await codeOf(() => new Agent(cluster, peers, { dataDir: tmp(), ...o }))).toBe(
        'ERR_INVALID_ARGUMENT',
      )
      expect(
        () => new Agent(cluster, peers, { dataDir: tmp(), insecure: true, ...o }),
      ).not.toThrow()
    }
    const tls = { ca: 'ca.pem', cert: 'host.pem', key: 'host.key' }
    for (const o of [
      { raftAddress: '0.0.0.0:0', host: { tls } },
      { apiAddress: '0.0.0.0:0', tls },
    ]) {
      expect(() => new Agent(cluster, peers, { dataDir: tmp(), ...o })).not.toThrow()
    }
    // An agent of another cluster is refused by every peer.
    const stranger = new Agent('another-cluster', peers, {
      dataDir: tmp(),
      joinToken: tokens[3],
      ...fast,
    })
    expect(await codeOf(() => stranger.start())).toBe('ERR_CLUSTER_MISMATCH')
    // Raw commands into the registry over the bus are refused, from anyone: a process that
    // names no member is refused as such, and even a member is refused the raw write.
    const drop = Buffer.from(JSON.stringify({ op: 'shard.delete', id: shardIds.spread }))
    const stray = new BusClient(cluster)
    expect(await codeOf(stray.propose(peers[0], 0, drop))).toBe('ERR_UNAUTHENTICATED')
    expect(await codeOf(stray.read(peers[0], 0, Buffer.from('x'), false))).toBe(
      'ERR_UNAUTHENTICATED',
    )
    stray.close()
    const member = new BusClient(cluster, { hostId: () => hostIds[3] })
    expect(await codeOf(member.propose(peers[0], 0, drop))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(member.commit(peers[1], 0, drop))).toBe('ERR_INVALID_ARGUMENT')
    member.close()
    expect(await state((s) => ({ shards: s.shards.size, replicas: s.replicas.size }))).toEqual(
      before,
    )
  })

  it('admits a joiner only with a token of the cluster, unexpired and unused', async () => {
    const before = await state((s) => ({ hosts: s.hosts.size, zero: s.replicasOf(0).length }))
    const joiner = (joinToken?: string, tags?: Record<string, string>) =>
      new Agent(cluster, peers, { dataDir: tmp(), joinToken, tags, ...fast })
    const refused = async (joinToken?: string, tags?: Record<string, string>) => {
      const a = joiner(joinToken, tags)
      const e = await a.start().then(
        () => undefined,
        (x: unknown) => x,
      )
      await a.stop()
      expect(e).toBeInstanceOf(ZongziError)
      return { code: (e as ZongziError).code, message: (e as ZongziError).message }
    }
    expect((await refused()).code).toBe('ERR_UNAUTHENTICATED')
    // Used by another host, forged, signed by another cluster's key, expired, wrong tags.
    const used = await refused(tokens[3])
    expect(used).toEqual({ code: 'ERR_UNAUTHENTICATED', message: expect.stringMatching(/another/) })
    const [head, body] = tokens[4].split('.')
    const forged = `${head}.${body}.${Buffer.alloc(32).toString('base64url')}`
    expect((await refused(forged)).message).toMatch(/not signed/)
    expect((await refused('hello')).message).toMatch(/malformed/)
    const short = await local[1].createJoinToken({ ttlMs: 1 })
    await sleep(20)
    expect((await refused(short)).message).toMatch(/expired/)
    const tagged = await local[1].createJoinToken({ tags: { zone: 'z' } })
    expect((await refused(tagged, { zone: 'y' })).message).toMatch(/tagged/)
    expect(await codeOf(() => local[0].createJoinToken({ ttlMs: 0 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await state((s) => ({ hosts: s.hosts.size, zero: s.replicasOf(0).length }))).toEqual(
      before,
    )
    // The tagged token admits a host with its tags, once.
    const ok = joiner(tagged, { zone: 'z' })
    await ok.start()
    expect(await state((s) => s.hosts.get(ok.hostId)?.tags)).toEqual({ zone: 'z' })
    await ok.stop()
    expect((await refused(tagged, { zone: 'z' })).message).toMatch(/another/)
  })

  it('waits for a shard until all, a quorum of, or the local replicas are active', async () => {
    const a = local[1]
    const sh = await a.createShard('kv', {
      name: 'awaited',
      placement: { members: { count: 3 }, vary: ['zone'] },
    })
    expect((await a.waitForShard(sh.id)).id).toBe(sh.id)
    const rs = a.stateLocal((s) => s.replicasOf(sh.id))
    expect(rs).toHaveLength(3)
    expect(rs.every((r) => r.status === 'active')).toBe(true)
    expect((await a.waitForShard(sh.id, { replicas: 'quorum' })).id).toBe(sh.id)
    const holders = new Set(rs.map((r) => r.hostId))
    const withReplica = local.find((x) => holders.has(x.hostId)) as Agent
    const without = local.find((x) => !holders.has(x.hostId)) as Agent
    await withReplica.waitForShard(sh.id, { replicas: 'local' })
    expect(withReplica.runs(sh.id)).toBe(true)

    const wait = (o: object) => without.waitForShard(sh.id, o)
    expect(await codeOf(() => wait({ replicas: 'local', timeoutMs: 200 }))).toBe('ERR_TIMEOUT')
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    expect(await codeOf(() => wait({ replicas: 'local', signal: ac.signal }))).toBe('ERR_ABORTED')
    expect(await codeOf(() => wait({ replicas: 'most' }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => wait({ timeoutMs: 0 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => wait({ signal: 'stop' }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => without.waitForShard(-1))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => without.waitForShard(99_999))).toBe('ERR_SHARD_NOT_FOUND')
  })

  it('deletes a shard: its replicas stop and their data goes', async () => {
    const id = shardIds.special
    expect(local[3].storedReplicas().some((r) => r.shardId === id)).toBe(true)
    await local[2].deleteShard(id)
    await waitUntil(() => local[3].stateLocal((s) => !s.shards.has(id)), { what: 'shard removal' })
    await waitUntil(() => !local[3].storedReplicas().some((r) => r.shardId === id), {
      what: 'data removal',
    })
    expect(local[3].runs(id)).toBe(false)
  })

  it('restarts a peer from disk with its replicas', async () => {
    const i = 1
    const before = local[i]
    const mine = before.stateLocal((s) => s.replicasOn(before.hostId).map((r) => r.shardId))
    expect(mine).toContain(0)
    // Shard "spread" has three voters, so it keeps a quorum while one host is down. If the
    // stopped host led it, a write in flight has an unknown outcome until a new leader is
    // elected; setting a key to the same value is idempotent, so it is retried.
    const put = async (k: string) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await local[0].client(shardIds.spread).propose(set(k, 'yes'))
        } catch (e) {
          const ambiguous =
            e instanceof ZongziError && ['ERR_TIMEOUT', 'ERR_OUTCOME_UNKNOWN'].includes(e.code)
          if (!ambiguous || attempt > 5) throw e
        }
      }
    }
    await put('before-restart')
    // Started without a raftAddress, the agent kept the port it picked on its first start.
    const raftAddress = before.raftAddress
    expect(raftAddress).toMatch(/:\d+$/)
    await before.stop()
    await put('during-restart')
    const again = mk(i)
    local[i] = again
    await again.start()
    expect(again.hostId).toBe(before.hostId)
    expect(again.raftAddress).toBe(raftAddress)
    for (const id of mine) await again.replica(id)
    for (const id of mine.filter((x) => x !== 0)) expect(again.runs(id)).toBe(true)
    for (const k of ['before-restart', 'during-restart']) {
      expect(text(await again.client(shardIds.spread).read(Buffer.from(k)))).toBe('yes')
    }
  })
})
