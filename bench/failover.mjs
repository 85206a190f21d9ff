// Failover benchmark: three agents in processes of their own hold a shard; a client agent in
// this process, which holds no replica of it, measures (median of --trials):
// - write: from SIGKILL of the process of the shard's leader to the client's first successful
//   write (the killed agent is restarted from its data between trials);
// - read: with one replica's process stopped (SIGSTOP), the slowest of --reads reads (a read
//   routed to the stopped host first is the slowest).
// Engine defaults (100 ms ticks, election after 10 ticks). The last line printed is JSON.
//
//   npm run build && node bench/failover.mjs [--trials 10] [--reads 10]
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { Agent } from '../dist/index.mjs'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { loopbackAddresses } from '../harness/ports.mjs'

const CLUSTER = 'failover'

function parseArgs(defaults) {
  const a = { ...defaults }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = Number(argv[i + 1])
  return a
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** startAgent runs one agent in a child process; resolves with the child and its host id. */
function startAgent(peers, i, dataDir) {
  const child = fork(new URL(import.meta.url).pathname, ['--agent'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, hostId: m.hostId, apiAddress: peers[i] }))
    child.once('exit', (code) => reject(new Error(`agent ${i} exited (${code})`)))
    child.send({ peers, dataDir, apiAddress: peers[i] })
  })
}

async function main() {
  const { trials, reads } = parseArgs({ trials: 10, reads: 10 })
  const root = mkdtempSync(join(tmpdir(), 'zongzi-failover-'))
  const peers = await loopbackAddresses(3)
  const dirs = peers.map((_, i) => join(root, `agent${i}`))
  const client = new Agent(CLUSTER, peers, { dataDir: join(root, 'client') })
  const procs = await Promise.all(peers.map((_, i) => startAgent(peers, i, dirs[i])))
  await client.start()
  const writes = []
  const slowestReads = []
  try {
    const sh = await client.createShard('kv', { placement: { members: { count: 3 } } })
    await client.waitForShard(sh.id, { timeoutMs: 60_000 })
    const c = client.client(sh.id)
    await c.propose(set('k', 'v'), { timeoutMs: 30_000 })

    for (let t = 0; t < trials; t++) {
      // The leader's host, as the engine of a replica sees it.
      const leaderHost = await leaderHostOf(client, sh.id)
      const i = procs.findIndex((p) => p.hostId === leaderHost)
      procs[i].child.kill('SIGKILL')
      const t0 = performance.now()
      for (let n = 0; ; n++) {
        try {
          await c.propose(set(`w${t}`, String(n)), { timeoutMs: 500 })
          break
        } catch {
          // not yet: a write without a session is sent again only as a new write here
        }
      }
      writes.push(performance.now() - t0)
      procs[i] = await startAgent(peers, i, dirs[i])
      await client.waitForShard(sh.id, { timeoutMs: 60_000 })
      await settle(c)
    }

    for (let t = 0; t < trials; t++) {
      const i = t % 3
      procs[i].child.kill('SIGSTOP')
      let slowest = 0
      for (let n = 0; n < reads; n++) {
        const t0 = performance.now()
        await c.read(Buffer.from('k'), { timeoutMs: 5000 })
        slowest = Math.max(slowest, performance.now() - t0)
      }
      slowestReads.push(slowest)
      procs[i].child.kill('SIGCONT')
      await settle(c)
    }
  } finally {
    for (const p of procs) p.child.kill('SIGKILL')
    await client.stop()
    rmSync(root, { recursive: true, force: true })
  }
  const round = (xs) => xs.map((x) => Math.round(x))
  console.log(`writes after SIGKILL of the leader's host (ms): ${round(writes).join(' ')}`)
  console.log(`slowest read with a host stopped (ms): ${round(slowestReads).join(' ')}`)
  console.log(
    JSON.stringify({
      trials,
      reads,
      writeAfterLeaderKillMs: Math.round(median(writes)),
      readWithStoppedHostMs: Math.round(median(slowestReads)),
    }),
  )
}

/** leaderHostOf returns the host id of the shard's leader once the registry records one. */
async function leaderHostOf(agent, shardId) {
  for (;;) {
    const host = agent.stateLocal((s) => {
      const sh = s.shards.get(shardId)
      const r = sh && s.replicasOf(shardId).find((x) => x.id === sh.leader)
      return r?.hostId
    })
    if (host) return host
    await sleep(20)
  }
}

/** settle waits until reads answer fast again, so that circuits opened by a trial close. */
async function settle(c) {
  await sleep(1500)
  for (let n = 0; n < 20; n++) await c.read(Buffer.from('k'), { timeoutMs: 5000 }).catch(() => {})
}

if (process.argv[2] === '--agent') {
  // A child: one agent, started and stopped by the parent.
  let agent
  process.on('message', async (m) => {
    agent = new Agent(CLUSTER, m.peers, { dataDir: m.dataDir, apiAddress: m.apiAddress })
    agent.register('kv', () => new KvStateMachine())
    await agent.start()
    process.send({ hostId: agent.hostId })
  })
  process.on('disconnect', () => process.exit(0))
} else {
  await main()
}
