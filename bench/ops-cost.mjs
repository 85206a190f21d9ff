// ops-cost: what the agent's operations cost its writes — three agents in this process on
// loopback, shards of three voters, clients proposing through `agent.client()`, each run once
// with the defaults (silent logger, nobody scraping) and once with everything on (a pino
// logger at debug writing to a discarding stream, /metrics and /status.json scraped every
// second, and the change stream followed over /events), alternating. The last line printed is
// one JSON object.
//
//   node bench/ops-cost.mjs --runs 3 --shards 8 --clients 256 --seconds 5
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'

import { Agent } from '../dist/index.js'
import { parseArgs } from './cluster.mjs'
import { KvStateMachine, set } from '../examples/kv.mjs'

const args = parseArgs(
  { runs: 3, shards: 8, clients: 256, seconds: 5 },
  'ops-cost.mjs [--runs N] [--shards N] [--clients N] [--seconds N]',
)

/** port asks the OS for a free port on 127.0.0.1. */
const port = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })

/** run starts a cluster, writes for `seconds`, and resolves with writes per second. */
async function run(on) {
  const root = mkdtempSync(join(tmpdir(), 'zongzi-ops-cost-'))
  const peers = []
  for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await port()}`)
  const sink = new Writable({ write: (_c, _e, cb) => cb() })
  const agents = peers.map((apiAddress, i) =>
    new Agent('cost', peers, {
      dataDir: join(root, `h${i}`),
      apiAddress,
      ...(on ? { logger: pino({ level: 'debug' }, sink), httpAddress: '127.0.0.1:0' } : {}),
    }).register('kv', () => new KvStateMachine()),
  )
  const ac = new AbortController()
  try {
    await Promise.all(agents.map((a) => a.start()))
    const shards = []
    for (let s = 0; s < args.shards; s++) {
      const sh = await agents[s % 3].createShard('kv', { placement: { members: { count: 3 } } })
      shards.push(sh.id)
    }
    await Promise.all(shards.map((id) => agents[0].waitForShard(id)))
    if (on) {
      for (const a of agents) {
        const base = `http://${a.httpAddress}`
        const scrape = setInterval(() => {
          for (const p of ['/metrics', '/status.json'])
            fetch(`${base}${p}`, { signal: ac.signal }).then(
              (r) => r.text(),
              () => {},
            )
        }, 1000)
        ac.signal.addEventListener('abort', () => clearInterval(scrape))
        fetch(`${base}/events`, { signal: ac.signal })
          .then(async (r) => {
            for await (const _ of r.body) {
            }
          })
          .catch(() => {})
      }
    }
    let writes = 0
    const end = Date.now() + args.seconds * 1000
    await Promise.all(
      Array.from({ length: args.clients }, async (_, c) => {
        const client = agents[c % 3].client(shards[c % shards.length])
        for (let n = 0; Date.now() < end; n++) {
          await client.propose(set(`k${c}-${n % 64}`, String(n)))
          writes++
        }
      }),
    )
    return Math.round(writes / args.seconds)
  } finally {
    ac.abort()
    await Promise.allSettled(agents.map((a) => a.stop()))
    rmSync(root, { recursive: true, force: true })
  }
}

const off = []
const on = []
for (let i = 0; i < args.runs; i++) {
  off.push(await run(false))
  on.push(await run(true))
  console.log(`run ${i + 1}: off ${off[i]} writes/s, on ${on[i]} writes/s`)
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const result = {
  off: median(off),
  on: median(on),
  ratio: median(on) / median(off),
  off_runs: off,
  on_runs: on,
}
console.log(JSON.stringify(result))
