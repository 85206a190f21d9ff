// bench:compare — bench:agent's workloads on Dragonboat v4 (bench/dragonboat, with its
// defaults and tuned for this machine's cores), on our engine alone (Rust state machine) and
// through Agent and ShardClient (JavaScript state machine), runs alternated between systems.
// Prints a table of medians, writes bench/results/compare.json and bench/results/compare.svg.
//
//   npm run bench:compare -- [--runs 3] [--seconds 10] [--clients 1024]
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir, cpus, loadavg } from 'node:os'
import { join } from 'node:path'

import { chart } from './chart.mjs'
import { parseArgs } from './cluster.mjs'

const args = parseArgs(
  { runs: 3, seconds: 10, clients: 1024 },
  'compare.mjs [--runs N] [--seconds N] [--clients N]',
)
const here = new URL('.', import.meta.url).pathname
const goDir = join(here, 'dragonboat')
const outDir = join(here, 'results')

/** dragonboatBinary builds bench/dragonboat once per source version; undefined without Go. */
function dragonboatBinary() {
  if (spawnSync('go', ['version']).status !== 0) {
    console.error('Go is not installed: Dragonboat is skipped (install golang-go to compare)')
    return undefined
  }
  const hash = createHash('sha256')
  for (const f of ['main.go', 'go.mod', 'go.sum']) hash.update(readFileSync(join(goDir, f)))
  const bin = join(
    homedir(),
    '.cache',
    'zongzi-bench',
    `dragonboat-${hash.digest('hex').slice(0, 12)}`,
  )
  if (!existsSync(bin)) {
    console.error('building bench/dragonboat (a few minutes the first time) …')
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: goDir, stdio: 'inherit' })
  }
  return bin
}

const common = (shards) => [
  '--shards',
  String(shards),
  '--clients',
  String(args.clients),
  '--payload',
  '16',
  '--seconds',
  String(args.seconds),
]
const bin = dragonboatBinary()
const systems = [
  ...(bin
    ? [
        { name: 'Dragonboat, defaults', cmd: (s) => [bin, ...goFlags(s)] },
        {
          name: 'Dragonboat, tuned (1 exec, 1 log DB shard)',
          cmd: (s) => [bin, '-tuned', ...goFlags(s)],
        },
      ]
    : []),
  {
    name: 'engine, Rust state machine',
    cmd: (s) => [
      'cargo',
      'run',
      '--release',
      '-q',
      '-p',
      'zongzi-engine',
      '--example',
      'bench',
      '--',
      '--hosts',
      '3',
      ...common(s),
    ],
  },
  {
    name: 'Agent + ShardClient, JS state machine',
    cmd: (s) => ['node', join(here, 'agent.mjs'), ...common(s)],
  },
]
/** goFlags are the common flags in Go's spelling (-name value). */
function goFlags(shards) {
  return common(shards).map((a) => (a.startsWith('--') ? a.slice(1) : a))
}

/** run runs one benchmark command and returns its last line's JSON. */
function run(cmd) {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 })
  const last = r.stdout.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(last)
  } catch {
    throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`)
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const workloads = [48, 1]
const results = []
for (const shards of workloads) {
  const runs = systems.map(() => [])
  for (let r = 0; r < args.runs; r++) {
    // Alternated: every system once per round, so drift on a shared machine hits all alike.
    for (const [i, sys] of systems.entries()) {
      const out = run(sys.cmd(shards))
      runs[i].push(out)
      console.error(
        `${shards} shards, ${sys.name}, run ${r + 1}: ${Math.round(out.writes_per_sec)} writes/s`,
      )
    }
  }
  for (const [i, sys] of systems.entries()) {
    results.push({
      shards,
      system: sys.name,
      writesPerSec: runs[i].map((o) => Math.round(o.writes_per_sec)),
      p99Ms: runs[i].map((o) => Math.round(o.p99_ms * 10) / 10),
      medianWritesPerSec: median(runs[i].map((o) => Math.round(o.writes_per_sec))),
      medianP99Ms: median(runs[i].map((o) => Math.round(o.p99_ms * 10) / 10)),
    })
  }
}

const cores = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`
const machine = `${cores}, load average ${loadavg()[0].toFixed(1)} at the end`
const base = (shards) =>
  results.find((r) => r.shards === shards && r.system.startsWith('Dragonboat, tuned'))
console.log(
  `| shards | system | writes/s (median of ${args.runs}) | runs | p99 ms | vs tuned Dragonboat |`,
)
console.log('|---|---|---|---|---|---|')
for (const r of results) {
  const b = base(r.shards)
  const ratio = b ? (r.medianWritesPerSec / b.medianWritesPerSec).toFixed(2) : '–'
  console.log(
    `| ${r.shards} | ${r.system} | ${r.medianWritesPerSec.toLocaleString('en')} | ` +
      `${r.writesPerSec.join(', ')} | ${r.medianP99Ms} | ${ratio} |`,
  )
}
console.log(`machine: ${machine}; ${args.seconds} s runs, 16-byte writes, fsync on`)
mkdirSync(outDir, { recursive: true })
const report = { machine, seconds: args.seconds, runs: args.runs, results }
writeFileSync(join(outDir, 'compare.json'), `${JSON.stringify(report, null, 2)}\n`)
writeFileSync(join(outDir, 'compare.svg'), chart(report))
console.log(JSON.stringify({ bench: 'compare', results }))
