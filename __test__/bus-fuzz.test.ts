import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { set } from '../examples/kv.mjs'
import { runCommand } from '../ts/coordinator/registry/commands'
import { Invalid, Writer } from '../ts/coordinator/registry/writer'
import { Agent, type RegistryState } from '../ts/index'
import { freePort, sleep, TempDirs, waitUntil } from './helpers'
import {
  CLUSTER,
  type Case,
  Counted,
  KEY,
  OWN,
  VALUE,
  type World,
  connect,
  problem,
  same,
  show,
  textOf,
  textSize,
} from './fixtures/bus-fuzz-calls'
import { cases } from './fixtures/bus-fuzz-cases'
import { aboutAnother, rejoinedAt, view } from './fixtures/bus-fuzz-kit'

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

const dirs = new TempDirs('zongzi-bus-fuzz-')

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

  it("has the registry keep other hosts' records when a member claims it rejoined", async () => {
    const s = await w.agents[0].state((x) => x)
    const others = (x: RegistryState, by: unknown) =>
      JSON.stringify(
        [...x.hosts.values()].filter((h) => h.id !== by).map(({ updated: _, ...h }) => h),
      )
    const after = (cmd: Record<string, unknown>): RegistryState => {
      const wr = new Writer(s, s.index + 1)
      try {
        runCommand(wr, cmd)
        return wr.finish()
      } catch (e) {
        if (!(e instanceof Invalid)) throw e
        return s
      }
    }
    const run = fc.check(
      fc.property(rejoinedAt(w), (cmd) => others(after(cmd), cmd.by) === others(s, cmd.by)),
      { numRuns: RUNS, seed: SEED },
    )
    if (run.failed) throw new Error(`${show(run.counterexample)} changed another host's record`)
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
