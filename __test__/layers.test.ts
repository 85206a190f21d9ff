import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const TS = join(__dirname, '..', 'ts')

/**
 * LAYERS lists the folders of ts/ from the bottom up; a file may import its own or lower.
 * ts/coordinator is in parts: the registry (shard 0's records and commands), the client
 * (shard clients, sessions, health, retry), the control (controllers, placement, liveness,
 * departures, drain, balance), and the agent with its wiring on top, in the folder itself.
 * The test kit (testing) and the recipes use the public API below them.
 */
const LAYERS = [
  'binding',
  'bus',
  'coordinator/registry',
  'coordinator/client',
  'coordinator/control',
  'coordinator',
  'testing',
  'recipes',
  'cli',
]

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  )
}

/** imports lists the ts/ files a file imports (type-only imports included). */
function imports(file: string): string[] {
  const src = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)) {
    const target = resolve(dirname(file), m[1])
    if (target.startsWith(TS)) out.push(`${target}.ts`)
  }
  return out
}

/**
 * layerOf is the index in LAYERS of a file's layer (-1 for a file outside every layer): its
 * top folder, or in ts/coordinator its sub-folder (a file in any other is in no layer).
 */
function layerOf(file: string): number {
  const [top, sub, ...rest] = relative(TS, file).split('/')
  if (top !== 'coordinator' || rest.length === 0) return LAYERS.indexOf(top)
  return LAYERS.indexOf(`${top}/${sub}`)
}

describe('the layers of ts/', () => {
  const all = files(TS)

  it('has every file but the export list in a layer', () => {
    const loose = all.filter((f) => layerOf(f) < 0).map((f) => relative(TS, f))
    expect(loose).toEqual(['index.ts'])
  })

  it('never imports upwards: binding ← … ← agent ← testing ← recipes ← cli', () => {
    const upward: string[] = []
    for (const f of all) {
      if (layerOf(f) < 0) continue
      for (const t of imports(f)) {
        if (layerOf(t) > layerOf(f)) upward.push(`${relative(TS, f)} → ${relative(TS, t)}`)
      }
    }
    expect(upward).toEqual([])
  })

  it('keeps every file, and every test file, at 400 lines or fewer', () => {
    const tests = readdirSync(__dirname, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(__dirname, f))
    const long = [...all.filter((f) => !f.includes('/generated/')), ...tests]
      .map((f) => [relative(join(TS, '..'), f), readFileSync(f, 'utf8').split('\n').length - 1])
      .filter(([, n]) => (n as number) > 400)
    expect(long).toEqual([])
  })

  it('has no import cycles between files', () => {
    const graph = new Map(all.map((f) => [f, imports(f)]))
    const cycles: string[] = []
    const state = new Map<string, 'open' | 'done'>()
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return
      if (state.get(f) === 'open') {
        const loop = path.slice(path.indexOf(f))
        cycles.push([...loop, f].map((x) => relative(TS, x)).join(' → '))
        return
      }
      state.set(f, 'open')
      for (const t of graph.get(f) ?? []) visit(t, [...path, f])
      state.set(f, 'done')
    }
    for (const f of all) visit(f, [])
    expect(cycles).toEqual([])
  })
})
