// One agent of bench:agent in a process of its own, driven by bench/agent.mjs over the
// harness's IPC. Its clients are the user's path: ShardClient.propose and read through this
// agent, which forwards over the bus when the shard's leader is elsewhere.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'

import { Agent } from '../dist/index.mjs'
import { serveOps } from '../harness/serve-ops.mjs'
import { BytesKv, command } from './kv-bytes.mjs'

const TYPE = 'bench:kv'
/** @type {Agent | undefined} */
let agent

/** until resolves once `ok()` holds, polling every 50 ms, or rejects after `ms`. */
async function until(ok, ms, what) {
  for (const end = Date.now() + ms; !ok(); ) {
    if (Date.now() > end) throw new Error(`${what} not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * drive runs one operation per call of `next` for `seconds`: closed loop (each client waits
 * for its answer) when `rate` is 0, else open loop at `rate` operations a second over all
 * clients, each latency measured from when the operation was due.
 */
async function drive({ clients, seconds, rate, op }) {
  const writes = []
  const reads = []
  let errors = 0
  const run = async (c, n, due) => {
    const o = op(c, n)
    try {
      await o.call()
      ;(o.kind === 'read' ? reads : writes).push(performance.now() - due)
    } catch {
      errors++
    }
  }
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  if (rate === 0) {
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let n = 0; performance.now() < end; n++) await run(c, n, performance.now())
      }),
    )
  } else {
    const pending = new Set()
    let issued = 0
    while (performance.now() < end) {
      const due = t0 + (issued * 1000) / rate
      const now = performance.now()
      if (due > now) {
        await new Promise((r) => setTimeout(r, Math.max(1, due - now)))
        continue
      }
      // Bounded: past this many in flight the system is saturated and the run says so.
      if (pending.size >= 65_536) {
        errors++
      } else {
        const p = run(issued % clients, issued, due).finally(() => pending.delete(p))
        pending.add(p)
      }
      issued++
    }
    await Promise.all(pending)
  }
  return { seconds: (performance.now() - t0) / 1000, writes, reads, errors }
}

/**
 * threadTimes reads each thread's CPU time (ms, user and system) by thread name from /proc
 * (Linux; empty elsewhere); the main thread, which runs JavaScript, is named `main`.
 */
function threadTimes() {
  const out = {}
  try {
    const tick = 10 // USER_HZ is 100 on Linux
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const name =
        Number(tid) === process.pid
          ? 'main'
          : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const key = name.replace(/[-_ ]?\d+$/, '')
      out[key] = (out[key] ?? 0) + (Number(f[11]) + Number(f[12])) * tick
    }
  } catch {}
  return out
}

/** profile starts V8's CPU profiler on this thread; `stop` writes FILE.cpuprofile in `dir`. */
async function profile() {
  const s = new Session()
  s.connect()
  await s.post('Profiler.enable')
  await s.post('Profiler.setSamplingInterval', { interval: 500 })
  await s.post('Profiler.start')
  return {
    stop: async (dir, name) => {
      const { profile } = await s.post('Profiler.stop')
      s.disconnect()
      mkdirSync(dir, { recursive: true })
      const file = join(dir, `${name}.cpuprofile`)
      writeFileSync(file, JSON.stringify(profile))
      return file
    },
  }
}

const ops = {
  start: async ({ cluster, peers, options }) => {
    agent = new Agent(cluster, peers, options)
    agent.register(TYPE, () => new BytesKv())
    await agent.start()
    return agent.hostId
  },
  createShards: async ({ count }) => {
    const made = []
    const placement = { members: { count: 3 } }
    for (let i = 0; i < count; i++) made.push(agent.createShard(TYPE, { placement }))
    return (await Promise.all(made)).map((s) => s.id)
  },
  // Every shard has three active replicas and a leader on record, and answers a read index.
  ready: async ({ shards }) => {
    await until(
      () =>
        agent.stateLocal((s) =>
          shards.every((id) => {
            const rs = s.replicasOf(id)
            return rs.length === 3 && rs.every((r) => r.status === 'active')
          }),
        ),
      120_000,
      'every replica active',
    )
    await Promise.all(shards.map((id) => agent.client(id).index({ timeoutMs: 30_000 })))
  },
  load: async (o) => {
    const { shards, clients, first, stride, seconds, payload, readShare, rate, profileDir } = o
    const bound = Array.from({ length: clients }, (_, c) => {
      const global = first + c * stride
      return { client: agent.client(shards[global % shards.length]), global }
    })
    const data = bound.map(() => Buffer.alloc(payload))
    const key = Buffer.alloc(8)
    const loop = monitorEventLoopDelay()
    loop.enable()
    const profiler = profileDir ? await profile() : undefined
    const cpu0 = process.cpuUsage()
    const threads0 = threadTimes()
    const r = await drive({
      clients,
      seconds,
      rate,
      op: (c, n) => {
        const { client, global } = bound[c]
        if (readShare > 0 && Math.random() < readShare) {
          command(key, global, n)
          return { kind: 'read', call: () => client.read(key) }
        }
        // A closed-loop client reuses its buffer: its previous write has been answered.
        const buf = rate === 0 ? data[c] : Buffer.alloc(payload)
        const cmd = command(buf, global, n)
        return { kind: 'write', call: () => client.propose(cmd) }
      },
    })
    const cpu = process.cpuUsage(cpu0)
    const threads = threadTimes()
    for (const k of Object.keys(threads)) threads[k] -= threads0[k] ?? 0
    loop.disable()
    const written = profiler ? await profiler.stop(profileDir, `agent-${agent.hostId}`) : undefined
    return {
      profile: written,
      // Each thread group's share of a core over the load, in %.
      threadPct: Object.fromEntries(
        Object.entries(threads).map(([k, ms]) => [k, Math.round(ms / r.seconds / 10)]),
      ),
      ...r,
      cpuPct: (100 * (cpu.user + cpu.system)) / (r.seconds * 1e6),
      rssMb: process.memoryUsage().rss / 2 ** 20,
      eventLoopP99Ms: loop.percentile(99) / 1e6,
    }
  },
  stop: () => agent?.stop(),
}

serveOps(ops)
process.on('disconnect', () => {
  Promise.resolve(agent?.stop()).finally(() => process.exit(0))
})
process.send?.({ ready: true })
