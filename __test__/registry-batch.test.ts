import { describe, expect, it } from 'vitest'

import { runCommand } from '../ts/coordinator/registry/commands'
import { type Batch, Invalid, Writer } from '../ts/coordinator/registry/writer'
import { apply, fresh, outcome } from './fixtures/registry'

// What a registry command copies: within one batch of entries, a table is copied from the
// published state once, and the batch's later commands change that copy in place; a state
// readers have seen never changes, and a refused command leaves the batch's tables as they
// were. On a registry of 10,000 shards, so that a copy per command would show.

/** big is a registry with 10,000 shards (and the fixture's hosts and shard 1). */
function big() {
  const r = fresh()
  const cmds = Array.from({ length: 10_000 }, () => ({ op: 'shard.create', name: '', type: 'kv' }))
  for (const x of apply(r, ...cmds)) expect(outcome(x).ok).toBe(true)
  return r
}

/** step applies one command in `batch`, as the registry does, and returns the new state. */
function step(w: Writer, cmd: unknown) {
  try {
    runCommand(w, JSON.parse(JSON.stringify({ by: 'h1', ...(cmd as object) })))
    return w.finish()
  } catch (e) {
    if (!(e instanceof Invalid)) throw e
    w.abandon()
    return undefined
  }
}

describe('registry commands in one batch', () => {
  it('copy a table once from the published state, then change it in place', () => {
    const r = big()
    const published = r.state
    const size = published.shards.size
    const batch: Batch = new Set()
    const create = { op: 'shard.create', name: '', type: 'kv' }
    const s1 = step(new Writer(published, 1_000_001, batch), create)
    const s2 = s1 && step(new Writer(s1, 1_000_002, batch), create)
    if (!s1 || !s2) throw new Error('refused')
    expect(s1.shards).not.toBe(published.shards)
    expect(s2.shards).toBe(s1.shards)
    // Whatever else the first command copied, the second did not copy again.
    expect(s2.hosts).toBe(s1.hosts)
    expect(s2.replicas).toBe(s1.replicas)
    // What readers saw is as it was.
    expect(size).toBeGreaterThan(10_000)
    expect(published.shards.size).toBe(size)
    expect(s2.shards.size).toBe(size + 2)
    // The tables are plain maps between commands.
    expect(Object.keys(s2.shards)).toEqual([])
  })

  it('undo a refused command in place, and a later batch copies again', () => {
    const r = big()
    const batch: Batch = new Set()
    const s1 = step(new Writer(r.state, 1_000_001, batch), {
      op: 'shard.update',
      id: 5,
      tags: { a: 'b' },
    })
    if (!s1) throw new Error('refused')
    const before = new Map(s1.shards)
    // Changes shard 7's record, then is refused (shard 99,999 does not exist): nothing stays.
    const w = new Writer(s1, 1_000_002, batch)
    w.shards.set(7, { ...(w.shards.get(7) as NonNullable<ReturnType<typeof w.shards.get>>) })
    w.shards.delete(8)
    expect(step(w, { op: 'shard.update', id: 99_999, tags: {} })).toBeUndefined()
    expect(s1.shards).toEqual(before)
    expect(Object.keys(s1.shards)).toEqual([])
    // A new batch never changes what the last one published.
    const s3 = step(new Writer(s1, 1_000_003, new Set()), { op: 'shard.delete', id: 9 })
    expect(s3?.shards).not.toBe(s1.shards)
    expect(s1.shards.get(9)?.status).not.toBe('deleting')
  })
})
