import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { classify, type ErrorCode, isErrorCode, ZongziError } from '../ts/binding/errors'
import { Host } from '../ts/index'
import { Kv, put } from './fixtures/kv.mjs'
import { agreedLeader, replicaId as rid, retry, TempDirs, waitUntil } from './helpers'

const CLUSTER = 13
const dirs = new TempDirs('zongzi-errors-')
const hosts: Host[] = []

function open(extra: Partial<Parameters<typeof Host.open>[0]> = {}): Host {
  const h = Host.open({ clusterId: CLUSTER, dataDir: dirs.make(), tickMs: 10, ...extra })
  hosts.push(h)
  return h
}

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

/** bootstrap starts shard 1 with one voter on each of `hs`. */
async function bootstrap(hs: Host[]): Promise<void> {
  const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
  await Promise.all(
    hs.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, () => new Kv())),
  )
}

/** failure returns the error a call rejects with. */
async function failure(p: Promise<unknown>): Promise<ZongziError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(ZongziError)
    return e as ZongziError
  }
  throw new Error('expected the call to fail')
}

/** what is the part of an error that tells the caller what to do. */
const what = (e: ZongziError) => ({ code: e.code, outcome: e.outcome, retrySafe: e.retrySafe })

type Row = [ErrorCode, 'not-applied' | 'unknown', boolean, boolean, boolean]

// code, outcome of a write, a write may retry, an idempotent write may retry, a read may retry
const TABLE: Row[] = [
  ['ERR_NOT_READY', 'not-applied', true, true, true],
  ['ERR_NO_LEADER', 'not-applied', true, true, true],
  ['ERR_TIMEOUT', 'unknown', false, true, true],
  ['ERR_OUTCOME_UNKNOWN', 'unknown', false, true, true],
  ['ERR_DROPPED', 'not-applied', true, true, true],
  ['ERR_BUSY', 'not-applied', true, true, true],
  ['ERR_LEADER_CHANGED', 'unknown', false, false, true],
  ['ERR_SHARD_NOT_FOUND', 'not-applied', true, true, true],
  ['ERR_SHARD_EXISTS', 'not-applied', false, false, false],
  ['ERR_PAYLOAD_TOO_LARGE', 'not-applied', false, false, false],
  ['ERR_CLOSED', 'unknown', false, false, true],
  ['ERR_INVALID_ARGUMENT', 'not-applied', false, false, false],
  ['ERR_STORAGE', 'unknown', false, false, true],
  ['ERR_HOST_FAILED', 'unknown', false, false, true],
  ['ERR_STATE_MACHINE', 'unknown', false, false, false],
  ['ERR_RAFT', 'not-applied', false, false, false],
  ['ERR_IO', 'unknown', false, false, false],
  ['ERR_UNAVAILABLE', 'not-applied', true, true, true],
  ['ERR_CLUSTER_MISMATCH', 'not-applied', false, false, false],
  ['ERR_UNAUTHENTICATED', 'not-applied', false, false, false],
  ['ERR_SESSION_EXPIRED', 'not-applied', false, false, false],
  ['ERR_ABORTED', 'unknown', false, false, false],
  ['ERR_NATIVE_UNAVAILABLE', 'not-applied', false, false, false],
  ['ERR_UNSUPPORTED_VERSION', 'not-applied', false, false, false],
  ['ERR_INTERNAL', 'unknown', false, false, false],
]

describe('the classification of error codes', () => {
  it('covers every code exactly once', () => {
    const codes = TABLE.map((r) => r[0])
    expect(new Set(codes).size).toBe(codes.length)
    for (const c of codes) expect(isErrorCode(c)).toBe(true)
    // A code missing from the table would be a string isErrorCode accepts and TABLE lacks.
    expect(codes.length).toBe(25)
  })

  it.each(TABLE)(
    '%s: a write is %s (retry %s, idempotent %s); a read retries %s',
    (code, outcome, w, wi, r) => {
      const write = new ZongziError(code, 'x')
      expect([write.call, write.outcome, write.retrySafe]).toEqual(['write', outcome, w])
      expect(classify(code, 'write', true).retrySafe).toBe(wi)
      const read = new ZongziError(code, 'x', { call: 'read' })
      expect([read.call, read.outcome, read.retrySafe]).toEqual(['read', 'not-applied', r])
    },
  )

  it('is the table of docs/errors.md, row by row', () => {
    // A row: | code | meaning | write outcome | write may retry | idempotent write | read |;
    // a code only reads fail with has "—" in the write columns (classified unknown, no retry).
    const doc = readFileSync(join(__dirname, '..', 'docs', 'errors.md'), 'utf8')
    const rows = [
      ...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|[^|]*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|$/gm),
    ]
    const yes = (cell: string) => cell.trim() === 'yes'
    const documented = rows.map((m): Row => {
      const outcome = m[2].trim() === '—' ? 'unknown' : (m[2].trim() as Row[1])
      return [m[1] as ErrorCode, outcome, yes(m[3]), yes(m[4]), yes(m[5])]
    })
    expect(documented).toEqual(TABLE)
  })

  it('a code that proves nothing was proposed is the only way a plain write may retry', () => {
    for (const [code, outcome, w] of TABLE) if (w) expect(outcome, code).toBe('not-applied')
  })
})

describe('errors raised by real hosts say what the caller may do', () => {
  it('a write and a read where no leader is known fail ERR_NO_LEADER, not applied', async () => {
    // One of three voters runs: no leader can be elected.
    const hs = [open(), open(), open()]
    await bootstrap(hs)
    await Promise.all([hs[1].close(), hs[2].close()])
    const w = await failure(hs[0].propose(1, put('a', '1'), { timeoutMs: 100 }))
    expect(what(w)).toEqual({ code: 'ERR_NO_LEADER', outcome: 'not-applied', retrySafe: true })
    const r = await failure(hs[0].read(1, Buffer.from('a'), { timeoutMs: 100 }))
    expect([r.code, r.call, r.outcome, r.retrySafe]).toEqual([
      'ERR_NO_LEADER',
      'read',
      'not-applied',
      true,
    ])
  })

  it('a write beyond the admission limit fails ERR_BUSY at once, not applied', async () => {
    const hs = [open(), open(), open()]
    await bootstrap(hs)
    await Promise.all([hs[1].close(), hs[2].close()])
    // The engine admits 16,384 proposals of one shard waiting on a host; all wait for a leader.
    const all = Array.from({ length: 16_385 }, (_, i) =>
      failure(hs[0].propose(1, put(`k${i}`, ''), { timeoutMs: 2000 })),
    )
    const errs = await Promise.all(all)
    const busy = errs.filter((e) => e.code === 'ERR_BUSY')
    expect(busy.length).toBeGreaterThan(0)
    expect(what(busy[0])).toEqual({ code: 'ERR_BUSY', outcome: 'not-applied', retrySafe: true })
    expect(errs.every((e) => e.code === 'ERR_BUSY' || e.code === 'ERR_NO_LEADER')).toBe(true)
  })

  it('maxInFlight in the host options bounds the writes waiting on a host', async () => {
    const hs = [open({ maxInFlight: 8 }), open(), open()]
    await bootstrap(hs)
    await Promise.all([hs[1].close(), hs[2].close()])
    const all = Array.from({ length: 9 }, (_, i) =>
      failure(hs[0].propose(1, put(`k${i}`, ''), { timeoutMs: 500 })),
    )
    const codes = (await Promise.all(all)).map((e) => e.code)
    expect(codes.filter((c) => c === 'ERR_BUSY')).toHaveLength(1)
  })

  it('a write at a leader without followers times out, then its outcome is unknown', async () => {
    // Slow ticks: the leader notices it lost its quorum only after an election timeout.
    const hs = [open({ tickMs: 50 }), open({ tickMs: 50 }), open({ tickMs: 50 })]
    await bootstrap(hs)
    const l = await waitUntil(
      async () =>
        agreedLeader(await Promise.all(hs.map((h) => h.status(1).catch(() => undefined)))),
      { what: 'a leader' },
    )
    await retry(() => hs[l].propose(1, put('a', '1')))
    await Promise.all(hs.filter((_, i) => i !== l).map((h) => h.close()))
    const t = await failure(hs[l].propose(1, put('b', '1'), { timeoutMs: 20 }))
    expect(what(t)).toEqual({ code: 'ERR_TIMEOUT', outcome: 'unknown', retrySafe: false })
    // Once it steps down, what is still waiting is answered at once, outcome unknown.
    const u = await failure(hs[l].propose(1, put('c', '1'), { timeoutMs: 10_000 }))
    expect(what(u)).toEqual({
      code: 'ERR_OUTCOME_UNKNOWN',
      outcome: 'unknown',
      retrySafe: false,
    })
  })

  it('calls on a closed host fail ERR_CLOSED: a write unknown, a read may move on', async () => {
    const h = open()
    await h.close()
    const w = await failure(h.propose(1, put('a', '1')))
    expect(what(w)).toEqual({ code: 'ERR_CLOSED', outcome: 'unknown', retrySafe: false })
    const r = await failure(h.read(1, Buffer.from('a')))
    expect([r.code, r.outcome, r.retrySafe]).toEqual(['ERR_CLOSED', 'not-applied', true])
  })

  it('a bad argument is not applied and not worth a retry', async () => {
    const h = open()
    const e = await failure(h.propose(1, 'x' as unknown as Uint8Array))
    expect(what(e)).toEqual({
      code: 'ERR_INVALID_ARGUMENT',
      outcome: 'not-applied',
      retrySafe: false,
    })
  })
})
