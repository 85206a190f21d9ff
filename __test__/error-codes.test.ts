import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = join(__dirname, '..')
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8')
const codes = (text: string) => new Set([...text.matchAll(/ERR_[A-Z_]+/g)].map((m) => m[0]))
const sorted = (s: Set<string>) => [...s].sort()

/** between returns the text of `src` from `start` up to the first `end` after it. */
function between(src: string, start: string, end: string): string {
  const a = src.indexOf(start)
  expect(a, `${start} not found`).toBeGreaterThanOrEqual(0)
  const b = src.indexOf(end, a + start.length)
  return src.slice(a, b < 0 ? undefined : b)
}

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory()
      ? tsFiles(join(dir, d.name))
      : d.name.endsWith('.ts')
        ? [join(dir, d.name)]
        : [],
  )
}

describe('error codes', () => {
  const engine = codes(between(read('crates/engine/src/error.rs'), 'fn code(', '\n    }\n'))
  const binding = codes(
    [...read('crates/node/src/error.rs').matchAll(/Code\("(ERR_[A-Z_]+)"\)/g)]
      .map((m) => m[1])
      .join(' '),
  )
  const errorsTs = read('ts/binding/errors.ts')
  const type = codes(between(errorsTs, 'export type ErrorCode', '\n\n'))
  const runtime = codes(between(errorsTs, 'const CLASSES', '\n}\n'))
  const docs = codes(read('docs/errors.md'))
  // The zongzi command's own codes in its JSON output, for its command line and config file:
  // never a ZongziError's.
  const CLI_CODES = new Set(['ERR_USAGE', 'ERR_CONFIG'])
  // Codes made in TypeScript: string literals outside the list itself.
  const madeInTs = new Set<string>()
  for (const f of tsFiles('ts')) {
    if (f.endsWith('errors.ts')) continue
    const cli = f.startsWith(join('ts', 'cli'))
    for (const m of read(f).matchAll(/'(ERR_[A-Z_]+)'/g)) {
      if (cli && CLI_CODES.has(m[1])) continue
      expect(CLI_CODES.has(m[1]), `${m[1]} in ${f}`).toBe(false)
      madeInTs.add(m[1])
    }
  }

  it("of the zongzi command's output are none of the library's", () => {
    for (const c of CLI_CODES) expect(type.has(c), c).toBe(false)
  })

  it('are found in every source', () => {
    for (const s of [engine, binding, type, runtime, docs]) expect(s.size).toBeGreaterThan(2)
  })

  it('in Rust (engine and binding) all belong to the TypeScript ErrorCode type', () => {
    expect(sorted(new Set([...engine, ...binding].filter((c) => !type.has(c))))).toEqual([])
  })

  it('of the TypeScript type are exactly those of Rust and those TypeScript makes', () => {
    expect(sorted(type)).toEqual(sorted(new Set([...engine, ...binding, ...madeInTs])))
  })

  it('are the same in the type, CLASSES (the runtime list) and docs/errors.md', () => {
    expect(sorted(runtime)).toEqual(sorted(type))
    expect(sorted(docs)).toEqual(sorted(type))
  })
})
