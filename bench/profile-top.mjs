// Prints where a V8 CPU profile (node --cpu-prof, or bench:agent's --cpuprof 1) spent its
// time: the functions with the most self time, and the share of the whole profile each takes.
// With --total, the time spent in each function and all it called (each sample counted once
// per function however deep the recursion), which shows what a call path costs as a whole.
//
//   node bench/profile-top.mjs FILE.cpuprofile [--top 25] [--total]
import { readFileSync } from 'node:fs'

const argv = process.argv.slice(2)
const file = argv.find((a) => !a.startsWith('--') && argv[argv.indexOf(a) - 1] !== '--top')
if (!file) {
  console.error('usage: profile-top.mjs FILE.cpuprofile [--top N] [--total]')
  process.exit(2)
}
const topAt = argv.indexOf('--top')
const top = topAt >= 0 ? Number(argv[topAt + 1]) : 25
const total = argv.includes('--total')
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map()
for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
const keyOf = (node) => {
  const { functionName, url, lineNumber } = node.callFrame
  const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : ''
  return `${functionName || '(anonymous)'} ${where}`.trim()
}
const time = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const us = profile.timeDeltas[i] ?? 0
  if (!total) {
    const key = keyOf(byId.get(profile.samples[i]))
    time.set(key, (time.get(key) ?? 0) + us)
    continue
  }
  const seen = new Set()
  for (let id = profile.samples[i]; id !== undefined; id = parent.get(id)) {
    const key = keyOf(byId.get(id))
    if (seen.has(key)) continue
    seen.add(key)
    time.set(key, (time.get(key) ?? 0) + us)
  }
}
const all = profile.timeDeltas.reduce((a, b) => a + b, 0)
for (const [key, us] of [...time].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((100 * us) / all).toFixed(1).padStart(5)}%  ${key}`)
}
