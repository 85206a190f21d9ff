import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const TS = join(__dirname, '..', 'ts')

/** LAYERS lists the folders of ts/ from the bottom up; a file may import its own or lower. */
const LAYERS = ['binding', 'bus', 'coordinator']

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

const layerOf = (file: string) => LAYERS.indexOf(relative(TS, file).split('/')[0])

describe('the layers of ts/', () => {
  const all = files(TS)

  it('has every file but the export list in a layer', () => {
    const loose = all.filter((f) => layerOf(f) < 0).map((f) => relative(TS, f))
    expect(loose).toEqual(['index.ts'])
  })

  it('never imports upwards: binding ← bus ← coordinator', () => {
    const upward: string[] = []
    for (const f of all) {
      if (layerOf(f) < 0) continue
      for (const t of imports(f)) {
        if (layerOf(t) > layerOf(f)) upward.push(`${relative(TS, f)} → ${relative(TS, t)}`)
      }
    }
    expect(upward).toEqual([])
  })
})
