import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'

import { beforeAll, describe, expect, it } from 'vitest'

import { hostChanges, membershipChanges } from '../ts/coordinator/registry/events'
import { nodesMade } from '../ts/coordinator/registry/pmap'
import { Registry } from '../ts/coordinator/registry/registry'
import type { RegistryState } from '../ts/coordinator/registry/state'
import { apply, fresh, outcome } from './fixtures/registry'
import { bigRegistry } from './fixtures/registry-big'

// What a registry command copies, on a registry of 10,000 shards and 30,000 replicas: a
// command makes a few tree nodes per record it writes (a path of at most 32-entry nodes in
// each table and index), never a copy of a table; a state readers have seen never changes;
// the indexes answer replicasOf and replicasOn as a scan of the replicas would.

/** A copy of the replica table alone would make about this many nodes. */
const TABLE_NODES = 30_000 / 32

let r: Registry

/** cost applies one command and returns how many nodes it made, its outcome and the states. */
function cost(cmd: Record<string, unknown>) {
  const before = r.state
  const n0 = nodesMade()
  const out = outcome(apply(r, cmd)[0])
  return { nodes: nodesMade() - n0, out, before, after: r.state }
}

/** unchanged checks that `s` still holds what `rows` took of it. */
const rows = (s: RegistryState) => ({
  hosts: [...s.hosts.values()],
  shards: [...s.shards.values()],
  replicas: [...s.replicas.values()],
})

describe('registry commands on 10,000 shards and 30,000 replicas', () => {
  beforeAll(() => {
    r = bigRegistry(10_000)
    expect(r.state.replicas.size).toBeGreaterThan(30_000)
  })

  it('make a few nodes per record they write, never a copy of a table', () => {
    const id = 5_000
    const [rep] = r.state.replicasOf(id)
    const cmds = [
      { op: 'shard.create', name: 'one-more', type: 'kv' },
      { op: 'shard.create', name: 'one-more', type: 'kv' },
      { op: 'shard.update', id, tags: { a: 'b' } },
      { op: 'shard.leader', id, leader: rep.id, term: 3 },
      { op: 'replica.update', id: rep.id, status: 'active' },
      { op: 'replica.create', shardId: id, hostId: 'h4', nonVoting: true },
      { op: 'replica.delete', id: rep.id },
      { op: 'host.status', id: 'h5', status: 'missing' },
    ]
    for (const cmd of cmds) {
      const { nodes, out } = cost(cmd)
      expect(out.ok, JSON.stringify(out)).toBe(true)
      // A record written to a table and its indexes: a path of 3 or 4 levels in each.
      expect(nodes, cmd.op).toBeLessThan(40)
    }
    expect(r.state.shardByName('one-more')?.id).toBe(r.state.nextShardId - 1)
    expect(r.state.replicasOf(id).map((x) => x.hostId)).toEqual(['h2', 'h3', 'h4'])
    expect(r.state.replicasOn('h4').map((x) => x.shardId)).toEqual([id])
    expect(TABLE_NODES).toBeGreaterThan(40 * 20)
  })

  it('a refused command leaves the tables as they were, the same objects', () => {
    const { nodes, out, before, after } = cost({ op: 'shard.update', id: 99_999, tags: {} })
    expect(out.ok).toBe(false)
    expect(after.index).toBeGreaterThan(before.index)
    expect(after.hosts).toBe(before.hosts)
    expect(after.shards).toBe(before.shards)
    expect(after.replicas).toBe(before.replicas)
    expect(nodes).toBe(0)
  })

  it('never changes a state readers have seen, and shares what a command did not change', () => {
    const seen = r.state
    const was = rows(seen)
    const { after } = cost({ op: 'shard.delete', id: 7 })
    cost({ op: 'replica.update', id: seen.replicasOf(8)[0].id, status: 'deleting' })
    expect(rows(seen)).toEqual(was)
    expect(after.shards.get(7)?.status).toBe('deleting')
    expect(seen.shards.get(7)?.status).not.toBe('deleting')
    expect(after.shards.get(9)).toBe(seen.shards.get(9))
    expect(after.replicasOf(9)).toEqual(seen.replicasOf(9))
  })

  it('a change of a host touches its shards: as many records as it has', () => {
    const h1 = r.state.hosts.get('h1')
    if (!h1) throw new Error('no h1')
    const onH1 = r.state.replicasOn('h1').length
    const { nodes, out, after } = cost({
      op: 'host.put',
      host: { ...h1, tags: {} },
    })
    expect(out.ok).toBe(true)
    expect(after.hosts.get('h1')?.tags).toEqual({})
    const touched = [...after.shards.values()].filter((s) => s.updated === after.index)
    expect(touched.length).toBe(onH1)
    // The shards rewritten, each a path in the shard table: far from a copy per shard.
    expect(nodes).toBeLessThan(onH1 * 5)
    expect(after.shards.get(1)?.updated).toBe(after.index)
  })

  it('lists the membership and host changes between two states', () => {
    const before = r.state
    const [a, b] = before.replicasOf(20)
    apply(
      r,
      { op: 'replica.update', id: a.id, nonVoting: true },
      { op: 'replica.delete', id: b.id },
      { op: 'replica.create', shardId: 20, hostId: 'h5', nonVoting: true },
      { op: 'host.status', id: 'h4', status: 'missing' },
    )
    const added = r.state.replicasOf(20).find((x) => x.hostId === 'h5')
    expect(membershipChanges(before, r.state)).toEqual([
      { change: 'demoted', shardId: 20, replicaId: a.id, hostId: a.hostId },
      { change: 'added', shardId: 20, replicaId: added?.id, hostId: 'h5' },
      { change: 'removed', shardId: 20, replicaId: b.id, hostId: b.hostId },
    ])
    expect(hostChanges(before, r.state)).toEqual([{ type: 'hostDown', hostId: 'h4' }])
    // Per host: the replicas of h5 and of the hosts that lost or changed one.
    expect(r.state.replicasChangedOn(before, 'h5')).toEqual([added?.id])
    expect(r.state.replicasChangedOn(before, a.hostId)).toEqual([a.id])
    expect(r.state.replicasChangedOn(before, b.hostId)).toEqual([b.id])
    expect(r.state.replicasChangedOn(r.state, 'h1')).toEqual([])
    expect(r.state.replicasChangedOn(before, 'nobody')).toEqual([])
  })

  it('answers replicasOf and replicasOn as a scan of the replicas', () => {
    const s = r.state
    const all = [...s.replicas.values()]
    const byShard = new Map<number, typeof all>()
    const byHost = new Map<string, typeof all>()
    for (const x of all) {
      byShard.set(x.shardId, [...(byShard.get(x.shardId) ?? []), x])
      byHost.set(x.hostId, [...(byHost.get(x.hostId) ?? []), x])
    }
    for (const id of s.shards.keys()) expect(s.replicasOf(id)).toEqual(byShard.get(id) ?? [])
    for (const id of s.hosts.keys()) {
      expect(s.replicasOn(id)).toEqual(byHost.get(id) ?? [])
      expect(s.countOn(id)).toBe(byHost.get(id)?.length ?? 0)
    }
  })
})

describe('a registry snapshot of 10,000 shards and 30,000 replicas', () => {
  it('is written in chunks and recovered line by line into an equal registry', async () => {
    const big = bigRegistry(10_000)
    const dir = mkdtempSync(join(tmpdir(), 'zongzi-registry-'))
    try {
      const path = join(dir, 'snapshot')
      const out = createWriteStream(path)
      const sizes: number[] = []
      const write = out.write.bind(out)
      out.write = ((chunk: string, ...rest: never[]) => {
        sizes.push(chunk.length)
        return write(chunk, ...rest)
      }) as typeof out.write
      await big.saveSnapshot(out)
      await finished(out)
      const bytes = statSync(path).size
      expect(bytes).toBeGreaterThan(4_000_000)
      // Never the whole registry at once: chunks of about 64 KiB.
      expect(Math.max(...sizes)).toBeLessThan(70_000)
      expect(sizes.length).toBeGreaterThan(bytes / 70_000)

      const back = new Registry()
      await back.recoverFromSnapshot(createReadStream(path, { highWaterMark: 4096 }))
      const [a, b] = [big.state, back.state]
      expect(rows(b)).toEqual(rows(a))
      for (const k of ['index', 'nextShardId', 'nextReplicaId', 'access'] as const)
        expect(b[k]).toEqual(a[k])
      for (const id of [0, 1, 2, 5_000, 10_001]) expect(b.replicasOf(id)).toEqual(a.replicasOf(id))
      expect(b.replicasOn('h2')).toEqual(a.replicasOn('h2'))
      expect(b.shardByName('s5000')).toEqual(a.shardByName('s5000'))
      // The recovered registry takes commands as the original does.
      const cmd = { op: 'shard.create', name: 'after', type: 'kv' }
      expect(outcome(apply(back, cmd)[0])).toEqual(outcome(apply(big, cmd)[0]))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('fails, without waiting for ever, when its stream fails', async () => {
    const big = bigRegistry(1_000)
    const out = new Writable({
      highWaterMark: 1024,
      write: (_chunk, _enc, cb) => setImmediate(() => cb(new Error('disk full'))),
    })
    await expect(big.saveSnapshot(out)).rejects.toThrow('disk full')
  })
})

describe('registry commands on a small registry', () => {
  it('index shards by name, and forget a name with its shard', () => {
    const small = fresh()
    const out = outcome(apply(small, { op: 'shard.create', name: 'n', type: 'kv' })[0])
    const id = out.id as number
    expect(small.state.shardByName('n')?.id).toBe(id)
    apply(small, { op: 'shard.delete', id })
    expect(small.state.shardByName('n')).toBeUndefined()
    const again = outcome(apply(small, { op: 'shard.create', name: 'n', type: 'kv' })[0])
    expect(again.id).toBeGreaterThan(id)
    expect(small.state.shardByName('n')?.id).toBe(again.id)
    expect(small.state.shardByName('')).toBeUndefined()
  })
})
