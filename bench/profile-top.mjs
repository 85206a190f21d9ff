// Prints where a V8 CPU profile (node --cpu-prof) spent its time: the functions with the most
// self time, and the share of the whole profile each takes.
//
//   node bench/profile-top.mjs FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs'

const [file, flag, n] = process.argv.slice(2)
if (!file) {
  console.error('usage: profile-top.mjs FILE.cpuprofile [--top N]')
  process.exit(2)
}
const top = flag === '--top' ? Number(n) : 25
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i])
  const { functionName, url, lineNumber } = node.callFrame
  const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : ''
  const key = `${functionName || '(anonymous)'} ${where}`.trim()
  self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`)
}
