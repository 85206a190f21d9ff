// The user's path against the engine in the same run: bench:agent and the engine's own
// benchmark, short, on the same workload, one after the other; fails (exit 1) when the Agent
// path delivers less than --min of the engine's writes/s. A ratio, not a time, so a slower or
// busier machine moves both sides. The last line printed is one JSON object.
//
//   node bench/agent-guard.mjs [--seconds 3] [--shards 24] [--clients 256] [--min 0.15]
import { spawnSync } from 'node:child_process'

import { parseArgs } from './cluster.mjs'

const args = parseArgs(
  { seconds: 3, shards: 24, clients: 256, min: 0.15 },
  'agent-guard.mjs [--seconds N] [--shards N] [--clients N] [--min RATIO]',
)
const workload = ['--shards', args.shards, '--clients', args.clients, '--payload', 16]
const flags = [...workload, '--seconds', args.seconds].map(String)

/** lastJson runs a command and parses its last line of output. */
function lastJson(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20 })
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '')
  } catch {
    throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`)
  }
}

const example = ['run', '--release', '-q', '-p', 'zongzi-engine', '--example', 'bench', '--']
const engine = lastJson('cargo', [...example, '--hosts', '3', ...flags])
const agent = lastJson('node', [new URL('./agent.mjs', import.meta.url).pathname, ...flags])
const ratio = agent.writes_per_sec / engine.writes_per_sec
const ok = ratio >= args.min && agent.errors === 0
console.log(
  JSON.stringify({
    bench: 'agent-guard',
    engineWritesPerSec: engine.writes_per_sec,
    agentWritesPerSec: agent.writes_per_sec,
    agentErrors: agent.errors,
    ratio: Math.round(ratio * 1000) / 1000,
    min: args.min,
    ok,
  }),
)
if (!ok) {
  console.error(
    `the Agent path delivered ${ratio.toFixed(3)} of the engine's writes/s ` +
      `(minimum ${args.min}) with ${agent.errors} errors`,
  )
  process.exit(1)
}
