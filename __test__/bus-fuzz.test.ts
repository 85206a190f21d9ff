import { randomUUID } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { KvStateMachine, set } from '../examples/kv.mjs'
import { type ErrorCode, isErrorCode } from '../ts/binding/errors'
import { fromServiceError } from '../ts/bus/codes'
import { makeClient, type RawClient } from '../ts/bus/service'
import { runCommand } from '../ts/coordinator/registry/commands'
import { registryLeader } from '../ts/coordinator/registry/proposers'
import { Invalid, Writer } from '../ts/coordinator/registry/writer'
import { Agent, type Entry, type RegistryState } from '../ts/index'
import { freePort, sleep, TempDirs, waitUntil } from './helpers'

// Generated requests of every kind the bus serves (Probe, Join, AddReplica, RemoveReplica, Propose,
// Commit, Session, Read, Index, Watch, Stream), sent raw to a live cluster of three agents with
// arbitrary field values, cluster names and caller identities. Each call settles, with an answer or
// a library error code sent by the server (never ERR_INTERNAL, never a hang); a refusal names the
// reason the request gives; and nothing generated changes the registry or the data of the user
// shard. BUS_FUZZ_RUNS sets the requests per kind (default 10,000), sent in concurrent batches.
//
// What is never generated: a request that a member may legitimately make to change state.
// With the right cluster name and a member's identity, Propose and Commit only name shard 0
// (refused as raw registry writes) or shards that do not exist; AddReplica and RemoveReplica
// only shard 0 (refused: its membership changes only through its own leader and joins) or
// shards that do not exist; Join shows a usable token only together with a flaw that must
// refuse it (another cluster, no host id, no Raft address, an invalid tag, or the id of a host
// already in the cluster). Every other combination goes: strangers and near-miss identities at
// the user shard, members of another cluster name, registry commands as data — among them
// commands one member proposes about another's records, which the registry itself refuses
// too (checked against its live state, see the last test).

const RUNS = Number(process.env.BUS_FUZZ_RUNS ?? 10_000)
/** BUS_FUZZ_SEED replays the requests of a failure's seed. */
const SEED = process.env.BUS_FUZZ_SEED ? Number(process.env.BUS_FUZZ_SEED) : undefined
const BATCH = 200
const CLUSTER = 'bus-fuzz'
const KEY = 'fuzz-key'
const VALUE = 'fuzz-value'
/** A call still unsettled after this long hangs. */
const HANG_MS = 10_000
/** How long an open stream that owes no answer is left before it is cancelled. */
const GRACE_MS = 30
const CALLER = 'zongzi-host'
/** Channel options for connections not shared with other clients. */
const OWN = { 'grpc.use_local_subchannel_pool': 1 }

const dirs = new TempDirs('zongzi-bus-fuzz-')

/** Counted is the kv state machine, counting the commands it applies. */
class Counted extends KvStateMachine {
  applied = 0
  override update(entries: Entry[]) {
    this.applied += entries.filter((e) => e.data.length > 0).length
    return super.update(entries)
  }
}

/** World is the cluster under test and what requests may name of it. */
interface World {
  agents: Agent[]
  addresses: string[]
  clients: RawClient[]
  hostIds: string[]
  raftAddresses: string[]
  shard: number
  replicaIds: number[]
  machines: Counted[]
  tokens: { valid: string; expired: string; gated: string }
}

/** Outcome is how a call settled: with an answer, or with its failure's code. */
type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; code: string; remote: boolean; message: string }

/**
 * Want is what a request must come to: a refusal with `code`, or an answer `ok` accepts
 * (or, with `maybe`, any library error but ERR_INTERNAL: the call reached Raft with a short
 * timeout). A stream left `open` is cancelled once it gave `count` answers.
 */
type Want =
  | { code: ErrorCode }
  | { ok: (v: unknown) => boolean; maybe?: boolean; open?: boolean; count?: number }

/** Case is one generated request: its fields, what it must come to, and how to send it. */
interface Case {
  q: object
  want: Want
  send: (clients: RawClient[]) => Promise<Outcome>
}

/** failed is the outcome of a failed call: its code, and whether the server sent that code. */
const failed = (e: grpc.ServiceError): Outcome => {
  const z = fromServiceError(e)
  const remote = typeof e.metadata?.get('zongzi-code')[0] === 'string'
  return { ok: false, code: z.code, remote, message: z.message }
}

/** problem says how `out` breaks `want`, or undefined when it does not. */
function problem(out: Outcome, want: Want): string | undefined {
  if (!out.ok) {
    const why = `failed with ${out.code} (${out.message.slice(0, 200)})`
    if (!isErrorCode(out.code) || out.code === 'ERR_INTERNAL') return why
    if (!out.remote) return `${why} without an answer from the server`
    if ('code' in want) return out.code === want.code ? undefined : `${why}, not ${want.code}`
    return want.maybe ? undefined : why
  }
  if ('code' in want) return `succeeded, not refused with ${want.code}`
  return want.ok(out.value) ? undefined : `answered ${show(out.value)}`
}

/** show prints a request or an answer for a failure message, bytes and long strings cut. */
const show = (x: unknown): string =>
  JSON.stringify(x, (_, v) => {
    if (v instanceof Uint8Array || v?.type === 'Buffer')
      return `bytes(${Buffer.from(v.data ?? v).toString('hex', 0, 24)}…)`
    return typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v
  })

/** textSize is how long the text of a request is, bytes left out. */
const textSize = (q: object): number =>
  JSON.stringify(q, (_, v) => (v instanceof Uint8Array || v?.type === 'Buffer' ? 0 : v)).length

const meta = (caller: string | undefined): grpc.Metadata => {
  const m = new grpc.Metadata()
  if (caller !== undefined) m.set(CALLER, caller)
  return m
}
const deadline = () => ({ deadline: Date.now() + HANG_MS })
const textOf = (b: Uint8Array) => Buffer.from(b).toString()
/** kvAnswer is what the kv state machine answers to `q`: only KEY is set. */
const kvAnswer = (q: Uint8Array) => (textOf(q) === KEY ? VALUE : '')
const same = (a: unknown[], b: unknown[]) => JSON.stringify(a) === JSON.stringify(b)

type Callback = (err: grpc.ServiceError | null, res?: unknown) => void
/** unary settles one unary call that `start` begins. */
function unary(
  c: RawClient,
  caller: string | undefined,
  start: (c: RawClient, m: grpc.Metadata, o: grpc.CallOptions, cb: Callback) => unknown,
): Promise<Outcome> {
  return new Promise((resolve) => {
    start(c, meta(caller), deadline(), (err, res) =>
      resolve(err ? failed(err) : { ok: true, value: res }),
    )
  })
}

type Stream = grpc.ClientReadableStream<{ data: Buffer }>
/**
 * collect gathers a streaming call's answers as text until it ends or fails, or, when `want`
 * leaves it open, until it gave `want.count` answers (or GRACE_MS passed, if it owes none).
 */
function collect(call: Stream, want: Want): Promise<Outcome> {
  const got: string[] = []
  const open = !('code' in want) && want.open ? (want.count ?? 0) : undefined
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const finish = (o: Outcome) => {
      clearTimeout(timer)
      resolve(o)
      call.cancel()
    }
    call.on('data', (r) => {
      got.push(textOf(r.data))
      if (open !== undefined && got.length >= open) finish({ ok: true, value: got })
    })
    call.on('error', (e: grpc.ServiceError) => finish(failed(e)))
    call.on('end', () => finish({ ok: true, value: got }))
    if (open === 0) timer = setTimeout(() => finish({ ok: true, value: got }), GRACE_MS)
  })
}

/** connect makes a client of each address. */
const connect = (addresses: string[], o: grpc.ChannelOptions) =>
  addresses.map((a) => makeClient(a, grpc.credentials.createInsecure(), o))

/** arbitraries are the field values requests are made of. */
function arbitraries(w: World) {
  // Up to 12,288 characters (ASCII, or any Unicode), well within the 16 MiB of a message.
  const huge = fc
    .oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 6 }))
    .map((s) => s.repeat(2048))
  const text = fc.oneof(
    { weight: 8, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 2, arbitrary: fc.constantFrom('', ' ', '\0', '127.0.0.1:1', 'localhost:0') },
    { weight: 1, arbitrary: huge },
  )
  const cluster = fc.oneof(
    { weight: 4, arbitrary: fc.constant(CLUSTER) },
    {
      weight: 2,
      arbitrary: fc.oneof(text, fc.constantFrom(`${CLUSTER} `, CLUSTER.toUpperCase(), 'bus')),
    },
  )
  // A member's id, anybody's (printable ASCII: what metadata carries), or a near miss.
  const member = fc.constantFrom(...w.hostIds)
  const nearMiss = fc
    .tuple(member, fc.constantFrom('upper', 'suffix', 'prefix', 'cut'))
    .map(([id, how]) =>
      how === 'upper'
        ? id.toUpperCase()
        : how === 'suffix'
          ? `${id}x`
          : how === 'prefix'
            ? `x${id}`
            : id.slice(0, -1),
    )
  const caller = fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 40 }) },
    { weight: 1, arbitrary: nearMiss },
    { weight: 4, arbitrary: member },
  )
  const ids = (special: number[]) =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(0, 1, 2, ...special) },
      { weight: 2, arbitrary: fc.nat(1000) },
      { weight: 2, arbitrary: fc.maxSafeNat() },
      { weight: 1, arbitrary: fc.constant(Number.MAX_SAFE_INTEGER) },
    )
  const shardId = fc.oneof({ weight: 2, arbitrary: fc.constant(w.shard) }, ids([w.shard]))
  const missing = ids([]).filter((id) => id !== 0 && id !== w.shard)
  const replicaId = ids(w.replicaIds)
  const registryCommand = fc
    .oneof(
      fc.constantFrom(
        { op: 'shard.delete', id: w.shard },
        { op: 'host.status', id: w.hostIds[0], status: 'gone' },
        { op: 'replica.delete', id: w.replicaIds[0] },
      ),
      aboutAnother(w),
    )
    .map((c) => Buffer.from(JSON.stringify(c)))
  const bytes = fc.oneof(
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: 48 }) },
    { weight: 3, arbitrary: fc.constantFrom(KEY, '', 'null', '{}').map((s) => Buffer.from(s)) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(KEY, 'k'), text).map(([k, v]) => set(k, v)) },
    { weight: 1, arbitrary: registryCommand },
    { weight: 1, arbitrary: fc.nat(1 << 16).map((n) => Buffer.alloc(n, n & 255)) },
  )
  const timeoutMs = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }))
  const to = fc.nat(w.agents.length - 1)
  const raftAddress = fc.oneof(text, fc.constantFrom(...w.raftAddresses))
  return {
    text,
    cluster,
    caller,
    shardId,
    missing,
    replicaId,
    bytes,
    timeoutMs,
    to,
    raftAddress,
  }
}

/** cases makes, for each kind of request, the arbitrary of its cases. */
function cases(w: World): Record<string, fc.Arbitrary<Case>> {
  const a = arbitraries(w)
  const isMember = (caller: string | undefined) => w.hostIds.includes(caller ?? '')
  const ok = (f: (v: never) => boolean, more: Partial<Want> = {}): Want => ({
    ok: f as (v: unknown) => boolean,
    ...more,
  })
  /** refused is the code a request is refused with before it reaches its handler, if any. */
  const refused = (
    cluster: string,
    caller: string | undefined,
    open = false,
  ): ErrorCode | undefined =>
    cluster !== CLUSTER
      ? 'ERR_CLUSTER_MISMATCH'
      : !open && !isMember(caller)
        ? 'ERR_UNAUTHENTICATED'
        : undefined
  /** live keeps a member of this cluster off `targets`: its request may act on them. */
  const live = <Q extends { cluster: string; caller?: string; shardId: number; spare: number }>(
    q: Q,
    targets: number[],
  ): Q =>
    q.cluster === CLUSTER && isMember(q.caller) && targets.includes(q.shardId)
      ? { ...q, shardId: q.spare }
      : q
  const base = { to: a.to, cluster: a.cluster, caller: a.caller }

  const probe = fc.record(base).map((q): Case => {
    const code = refused(q.cluster, q.caller, true)
    const want: Want = code
      ? { code }
      : ok(
          (r: { hostId: string; cluster: string; initialized: boolean; initialHosts: string[] }) =>
            r.hostId === w.hostIds[q.to] &&
            r.cluster === CLUSTER &&
            r.initialized &&
            same([...r.initialHosts].sort(), [...w.hostIds].sort()),
        )
    const send = (cs: RawClient[]) =>
      unary(cs[q.to], q.caller, (x, m, o, cb) => x.Probe(q, m, o, cb))
    return { q, want, send }
  })

  // The registry takes tag keys of 1 to 256 characters and values of up to 1,024.
  const tagsValid = (tags: Record<string, string>) =>
    Object.entries(tags).every(([k, v]) => k.length > 0 && k.length <= 256 && v.length <= 1024)
  const tagKey = fc.oneof(
    a.text,
    fc.constantFrom('', 'zone', 'fuzz-gate', '__proto__', 'constructor', 'k'.repeat(257)),
  )
  const tagValue = fc.oneof(a.text, fc.constant('v'.repeat(1025)))
  const token = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(w.tokens.valid, w.tokens.expired, w.tokens.gated) },
    { weight: 1, arbitrary: fc.constantFrom('', 'zzjoin1', 'zzjoin1..', 'zzjoin1.e30.') },
    { weight: 2, arbitrary: a.text },
    {
      weight: 2,
      // A usable token with its body changed: the signature no longer covers it.
      arbitrary: fc.tuple(fc.nat(), fc.constantFrom('A', 'b', '_')).map(([i, ch]) => {
        const [head, body, mac] = w.tokens.valid.split('.')
        const at = i % body.length
        const alt = body[at] === ch ? '-' : ch
        return [head, body.slice(0, at) + alt + body.slice(at + 1), mac].join('.')
      }),
    },
  )
  const join = fc
    .record({
      ...base,
      hostId: fc.oneof(a.text, fc.constantFrom(...w.hostIds), fc.uuid()),
      raftAddress: a.raftAddress,
      apiAddress: a.text,
      token,
      tags: fc.dictionary(tagKey, tagValue, { maxKeys: 3 }),
      flaw: fc.constantFrom('cluster', 'hostId', 'raftAddress', 'tags', 'known'),
      known: fc.constantFrom(...w.hostIds),
    })
    .map(({ flaw, known, ...q }) => {
      // The gated token needs a tag no generated request has.
      const { 'fuzz-gate': _, ...tags } = q.tags
      const r = { ...q, tags }
      const usable = r.cluster === CLUSTER && r.hostId && r.raftAddress && tagsValid(tags)
      if (r.token !== w.tokens.valid || !usable || w.hostIds.includes(r.hostId)) return r
      if (flaw === 'cluster') return { ...r, cluster: `${CLUSTER}-other` }
      if (flaw === 'tags') return { ...r, tags: { ...tags, '': 'flaw' } }
      // A member's id with everything else right: a join may not take a host's place.
      if (flaw === 'known') return { ...r, hostId: known }
      return { ...r, [flaw]: '' }
    })
    .map((q): Case => {
      const code =
        refused(q.cluster, q.caller, true) ??
        (!q.hostId || !q.raftAddress || !tagsValid(q.tags)
          ? 'ERR_INVALID_ARGUMENT'
          : 'ERR_UNAUTHENTICATED')
      const send = (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.Join(q, m, o, cb))
      return { q, want: { code }, send }
    })

  const change = fc
    .record({
      ...base,
      shardId: a.shardId,
      spare: a.missing,
      replicaId: a.replicaId,
      raftAddress: a.raftAddress,
      nonVoting: fc.boolean(),
    })
    .map((q) => live(q, [w.shard]))
  const codeOfChange = (q: { cluster: string; caller?: string; shardId: number }) =>
    refused(q.cluster, q.caller) ??
    (q.shardId === 0 ? 'ERR_INVALID_ARGUMENT' : 'ERR_SHARD_NOT_FOUND')
  const addReplica = change.map(
    (q): Case => ({
      q,
      want: { code: codeOfChange(q) },
      send: (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.AddReplica(q, m, o, cb)),
    }),
  )
  const removeReplica = change.map(
    (q): Case => ({
      q,
      want: { code: codeOfChange(q) },
      send: (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.RemoveReplica(q, m, o, cb)),
    }),
  )

  const write = fc
    .record({
      ...base,
      shardId: a.shardId,
      spare: fc.oneof(fc.constant(0), a.missing),
      data: a.bytes,
      timeoutMs: a.timeoutMs,
    })
    .map((q) => live(q, [w.shard]))
  const codeOfWrite = (q: { cluster: string; caller?: string; shardId: number }) =>
    refused(q.cluster, q.caller) ??
    (q.shardId === 0 ? 'ERR_INVALID_ARGUMENT' : 'ERR_SHARD_NOT_FOUND')
  const apply = write.map(
    (q): Case => ({
      q,
      want: { code: codeOfWrite(q) },
      send: (cs: RawClient[]) => unary(cs[q.to], q.caller, (x, m, o, cb) => x.Propose(q, m, o, cb)),
    }),
  )
  const commit = write.map(
    (q): Case => ({
      q,
      want: { code: codeOfWrite(q) },
      send: (cs: RawClient[]) => unary(cs[q.to], q.caller, (x, m, o, cb) => x.Commit(q, m, o, cb)),
    }),
  )

  // Registering a session on the user shard changes its session table, not its data or the
  // registry, so members may; on shard 0 it is a raw registry write, refused.
  const session = fc
    .record({
      ...base,
      shardId: a.shardId,
      clientId: a.replicaId,
      register: fc.boolean(),
      timeoutMs: a.timeoutMs,
    })
    .map((q): Case => {
      const code =
        refused(q.cluster, q.caller) ??
        (q.shardId === 0
          ? 'ERR_INVALID_ARGUMENT'
          : q.shardId !== w.shard
            ? 'ERR_SHARD_NOT_FOUND'
            : q.clientId === 0
              ? 'ERR_INVALID_ARGUMENT'
              : undefined)
      const want = code ? { code } : ok(() => true, { maybe: true })
      const send = (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.Session(q, m, o, cb))
      return { q, want, send }
    })

  /** reading is what a read-only request on `shardId` comes to once admitted. */
  const reading = (
    q: { cluster: string; caller?: string; shardId: number },
    user: Want,
  ): Want | undefined => {
    const code = refused(q.cluster, q.caller)
    if (code) return { code }
    if (q.shardId !== 0 && q.shardId !== w.shard) return { code: 'ERR_SHARD_NOT_FOUND' }
    return q.shardId === 0 ? undefined : user
  }
  const read = fc
    .record({
      ...base,
      shardId: a.shardId,
      query: a.bytes,
      stale: fc.boolean(),
      timeoutMs: a.timeoutMs,
    })
    .map((q): Case => {
      type Answer = { data: Buffer; absent: boolean }
      // The kv state machine answers the value of the key; the registry, the query itself.
      const kv = ok((r: Answer) => !r.absent && textOf(r.data) === kvAnswer(q.query), {
        maybe: true,
      })
      const registry = ok(
        (r: Answer) => !r.absent && JSON.parse(textOf(r.data)).query === textOf(q.query),
        { maybe: true },
      )
      const want = reading(q, kv) ?? registry
      const send = (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.Read(q, m, o, cb))
      return { q, want, send }
    })
  const index = fc
    .record({ ...base, shardId: a.shardId, timeoutMs: a.timeoutMs })
    .map((q): Case => {
      const answered = ok((r: { index: number }) => r.index > 0, { maybe: true })
      const want = reading(q, answered) ?? answered
      const send = (cs: RawClient[]) =>
        unary(cs[q.to], q.caller, (x, m, o, cb) => x.Index(q, m, o, cb))
      return { q, want, send }
    })
  const watch = fc.record({ ...base, shardId: a.shardId, query: a.bytes }).map((q): Case => {
    // The registry has no watch; the kv watch first answers with the value now.
    const want =
      reading(
        q,
        ok((v: string[]) => same(v, [kvAnswer(q.query)]), { open: true, count: 1 }),
      ) ?? ({ code: 'ERR_INVALID_ARGUMENT' } as const)
    const send = (cs: RawClient[]) => collect(cs[q.to].Watch(q, meta(q.caller), deadline()), want)
    return { q, want, send }
  })

  const message = fc.record({ cluster: a.cluster, shardId: a.shardId, data: a.bytes })
  const stream = fc
    .record({
      to: a.to,
      caller: a.caller,
      messages: fc.array(message, { maxLength: 4 }),
      end: fc.boolean(),
    })
    .map((q): Case => {
      const [first, ...rest] = q.messages
      let want: Want
      // Who calls is known before any message: a stranger is refused before it is read.
      if (!isMember(q.caller)) want = { code: 'ERR_UNAUTHENTICATED' }
      else if (!first) want = ok((v: string[]) => v.length === 0, { open: !q.end, count: 0 })
      else {
        // The kv stream answers every input (the first message's data only when it has some).
        const inputs = [...(first.data.length ? [first.data] : []), ...rest.map((m) => m.data)]
        const answers = inputs.map(kvAnswer)
        const user = ok((v: string[]) => same(v, answers), { open: !q.end, count: answers.length })
        want =
          reading({ ...first, caller: q.caller }, user) ??
          ({ code: 'ERR_INVALID_ARGUMENT' } as const)
      }
      const send = (cs: RawClient[]) => {
        const call = cs[q.to].Stream(meta(q.caller), deadline())
        const out = collect(call as unknown as Stream, want)
        for (const m of q.messages) call.write(m)
        if (q.end) call.end()
        return out
      }
      return { q, want, send }
    })

  return {
    Probe: probe,
    Join: join,
    AddReplica: addReplica,
    RemoveReplica: removeReplica,
    Propose: apply,
    Commit: commit,
    Session: session,
    Read: read,
    Index: index,
    Watch: watch,
    Stream: stream,
  }
}

/**
 * aboutAnother generates registry commands that one member proposes about another member's
 * records (its host record, its status, its leadership, a join under its id) or that only the
 * registry leader may propose; none may be accepted. With the registry's state `s`, the
 * proposer is never the registry leader on record (which may mark other hosts' states).
 */
function aboutAnother(w: World, s?: RegistryState): fc.Arbitrary<Record<string, unknown>> {
  const leader = s ? registryLeader(new Writer(s, s.index)) : undefined
  const proposers = w.hostIds.filter((id) => id !== leader)
  const text = fc.string({ maxLength: 24 })
  const pair = fc
    .tuple(fc.constantFrom(...proposers), fc.constantFrom(...w.hostIds))
    .filter(([by, about]) => by !== about)
  return pair.chain(([by, about]) => {
    const replicas = s ? s.replicasOn(about).map((r) => r.id) : w.replicaIds
    const tags = fc.dictionary(
      text.filter((k) => k.length > 0),
      text,
      { maxKeys: 2 },
    )
    const host = fc.record({
      id: fc.constant(about),
      apiAddress: text,
      raftAddress: text,
      tags,
      shardTypes: fc.constant(['kv']),
      certificate: text,
    })
    return fc.oneof(
      fc.record({ op: fc.constant('host.put'), host, by: fc.constant(by) }),
      fc.record({
        op: fc.constant('host.status'),
        id: fc.constant(about),
        status: fc.constantFrom('active', 'missing', 'draining', 'gone'),
        now: fc.nat(),
        from: fc.constantFrom('active'),
        by: fc.constant(by),
      }),
      fc.record({
        op: fc.constant('shard.leader'),
        id: fc.constantFrom(0, w.shard),
        leader: fc.constantFrom(...replicas),
        term: fc.nat(),
        by: fc.constant(by),
      }),
      fc.record({
        op: fc.constant('host.join'),
        hostId: fc.constant(about),
        token: fc.constant(w.tokens.valid),
        now: fc.constant(Date.now()),
        by: fc.constant(by),
      }),
      fc.record({ op: fc.constant('tokens.prune'), now: fc.nat(), by: fc.constant(by) }),
    )
  })
}

/** view is what no generated request may change: the registry without its volatile fields. */
function view(s: RegistryState): string {
  const rows = <T extends { updated: number }>(m: ReadonlyMap<unknown, T>, drop: string[] = []) =>
    [...m.values()]
      .map((r) => Object.entries(r).filter(([k]) => k !== 'updated' && !drop.includes(k)))
      .map((r) => JSON.stringify(r))
      .sort()
  return JSON.stringify({
    hosts: rows(s.hosts),
    shards: rows(s.shards, ['leader', 'term']),
    replicas: rows(s.replicas),
    next: [s.nextShardId, s.nextReplicaId],
    access: [s.access.joinKey, [...s.access.used.keys()].sort()],
  })
}

describe('the bus under generated requests', () => {
  const w = {} as World
  const sent: Record<string, number> = {}
  /** outcomes counts, per kind, the answers and the codes of refusals. */
  const outcomes: Record<string, Record<string, number>> = {}
  let before: string

  /** unchanged says whether every agent's registry and every kv replica are as they were. */
  const unchanged = () =>
    w.agents.every((x) => x.stateLocal(view) === before) &&
    w.machines.every((m) => m.applied === 1 && same([...m.map], [[KEY, VALUE]]))

  beforeAll(async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    w.machines = []
    w.agents = peers.map((apiAddress) =>
      new Agent(CLUSTER, peers, {
        dataDir: dirs.make(),
        apiAddress,
        host: { tickMs: 20 },
        reconcileMs: 200,
      }).register('kv', () => {
        const m = new Counted()
        w.machines.push(m)
        return m
      }),
    )
    await Promise.all(w.agents.map((x) => x.start()))
    const a0 = w.agents[0]
    const sh = await a0.createShard('kv', { name: 'fuzzed', placement: { members: { count: 3 } } })
    await a0.waitForShard(sh.id)
    await a0.client(sh.id).propose(set(KEY, VALUE))
    await waitUntil(() => w.machines.length === 3 && w.machines.every((m) => m.applied === 1), {
      what: 'the key on every replica',
    })
    w.shard = sh.id
    w.hostIds = w.agents.map((x) => x.hostId)
    w.raftAddresses = w.agents.map((x) => x.raftAddress)
    w.replicaIds = a0.stateLocal((s) => [...s.replicas.keys()])
    w.addresses = peers
    w.clients = connect(peers, {})
    w.tokens = {
      valid: await a0.createJoinToken(),
      expired: await a0.createJoinToken({ ttlMs: 1 }),
      gated: await a0.createJoinToken({ tags: { 'fuzz-gate': randomUUID() } }),
    }
    await sleep(5) // the expired token's millisecond passes
    before = await a0.state(view)
  }, 60_000)

  afterAll(async () => {
    for (const c of w.clients ?? []) c.close()
    await Promise.allSettled((w.agents ?? []).map((x) => x.stop()))
    dirs.removeAll()
  })

  const kinds = [
    'Probe',
    'Join',
    'AddReplica',
    'RemoveReplica',
    'Propose',
    'Commit',
    'Session',
    'Read',
    'Index',
    'Watch',
    'Stream',
  ]
  /**
   * check sends a batch of cases at once and throws on the first that breaks what it must
   * come to, or if the batch changed the registry or the data.
   */
  async function check(kind: string, batch: Case[]): Promise<void> {
    // Watch and Stream cancel many calls, and an HTTP/2 server closes the connection of a
    // client that resets streams too fast (nghttp2's rapid-reset limit: GOAWAY with
    // INTERNAL_ERROR), so each batch of them has connections of its own.
    const streaming = kind === 'Watch' || kind === 'Stream'
    const cs = streaming ? connect(w.addresses, OWN) : w.clients
    const outs = await Promise.all(batch.map((k) => k.send(cs)))
    if (streaming) for (const c of cs) c.close()
    sent[kind] += batch.length
    const seen = outcomes[kind]
    const broken: Array<{ size: number; text: string }> = []
    for (const [i, k] of batch.entries()) {
      const o = outs[i]
      const how = o.ok ? 'ok' : o.code.replace('ERR_', '')
      seen[how] = (seen[how] ?? 0) + 1
      const why = problem(o, k.want)
      if (why) broken.push({ size: textSize(k.q), text: `${kind} ${show(k.q)} ${why}` })
    }
    if (broken.length) {
      // A request that breaks its connection breaks the calls that share it: those with the
      // most text come first, as the likeliest cause.
      const first = broken.sort((x, y) => y.size - x.size).slice(0, 5)
      const list = first.map((b) => b.text).join('\n')
      throw new Error(
        `${broken.length} of a batch of ${batch.length} broke, most text first:\n${list}`,
      )
    }
    if (!unchanged()) throw new Error(`a batch of ${kind} changed the registry or the data`)
  }

  for (const kind of kinds) {
    it(`answers every generated ${kind} as its fields say`, async () => {
      const batches = fc.array(cases(w)[kind], { minLength: BATCH, maxLength: BATCH })
      sent[kind] = 0
      outcomes[kind] = {}
      // Stack traces (every gRPC call captures one, and vitest maps each through source maps)
      // would take most of the time; failures here are told by their messages.
      const limit = Error.stackTraceLimit
      Error.stackTraceLimit = 0
      // fc.check, not fc.assert: the message names the failing request, not the whole batch.
      const run = await fc
        .check(
          fc.asyncProperty(batches, (batch) => check(kind, batch)),
          { numRuns: Math.ceil(RUNS / BATCH), endOnFailure: true, seed: SEED },
        )
        .finally(() => {
          Error.stackTraceLimit = limit
        })
      if (run.failed) throw new Error(`${run.errorInstance} (seed ${run.seed})`)
      expect(sent[kind]).toBeGreaterThanOrEqual(RUNS)
    })
  }

  it('has the registry refuse every generated command of one member about another', async () => {
    // What Propose and Commit carry above is refused as a raw registry write before the registry
    // sees it; this checks that the registry would refuse it too, from the member it names.
    const s = await w.agents[0].state((x) => x)
    const verdict = (cmd: Record<string, unknown>): string => {
      try {
        runCommand(new Writer(s, s.index + 1), cmd)
        return 'accepted'
      } catch (e) {
        if (!(e instanceof Invalid)) throw e
        return e.code ?? `ERR_INVALID_ARGUMENT (${e.message})`
      }
    }
    const run = fc.check(
      fc.property(aboutAnother(w, s), (cmd) => verdict(cmd) === 'ERR_UNAUTHENTICATED'),
      { numRuns: RUNS, seed: SEED },
    )
    if (run.failed)
      throw new Error(`${show(run.counterexample)} was ${verdict(run.counterexample?.[0] ?? {})}`)
  })

  it('leaves every agent ready, the registry and the data as they were', async () => {
    const tally = (k: string) =>
      Object.entries(outcomes[k] ?? {})
        .map(([how, n]) => `${how} ${n}`)
        .join(', ')
    console.log(
      `bus fuzz requests: ${kinds.map((k) => `${k} ${sent[k]} (${tally(k)})`).join('; ')}`,
    )
    expect(w.agents.map((x) => x.status)).toEqual(['ready', 'ready', 'ready'])
    for (const x of w.agents) {
      expect(await x.state(view)).toBe(before)
      expect(textOf((await x.client(w.shard).read(Buffer.from(KEY))) ?? Buffer.alloc(0))).toBe(
        VALUE,
      )
    }
    expect(w.machines.map((m) => [m.applied, [...m.map]])).toEqual(
      w.machines.map(() => [1, [[KEY, VALUE]]]),
    )
  })
})
