// Every TypeScript and JavaScript block of the README, and every program in examples/, run as
// printed from a fresh install of the packed packages. The README's Rust block is
// crates/engine/examples/readme.rs, which crates/engine/tests/readme.rs runs.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Consumer, pack, ROOT } from './consumer'
import { TempDirs } from './helpers'
import { type Block, codeBlocks } from './readme-blocks'

const blocks = codeBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'))
const scripts = blocks.filter((b) => b.lang === 'ts' || b.lang === 'js')
const runnable = scripts.filter((b) => !b.partial)
/** The languages a README block may have; ts, js and rust blocks are tested. */
const LANGS = ['ts', 'js', 'rust', 'sh', '']

/** What a runnable block prints, by the heading it stands under. */
const PRINTS: Record<string, string> = {
  'The host API underneath (TypeScript)': '5 5\n',
}

/** The programs in examples/ and what each prints; the other files are modules they import. */
const PROGRAMS: Record<string, string> = {
  'agents.mjs': 'applied: 1 key(s)\nread: alice is admin\nwatch: alice became owner\n',
}
const MODULES = ['kv.mjs', 'kv.d.mts']

const source = (b: Block) => `readme-${b.line}.${b.lang === 'ts' ? 'mts' : 'mjs'}`
const output = (b: Block) => join('out', `readme-${b.line}.mjs`)

const dirs = new TempDirs('zongzi-readme-')
let app: Consumer
let compiled: Error | true | undefined

/** compile type-checks every block and emits JavaScript into out/, once. */
function compile(): void {
  if (compiled === undefined) {
    try {
      app.tsc(scripts.map(source), 'out')
      compiled = true
    } catch (e) {
      compiled = e as Error
    }
  }
  if (compiled !== true) throw compiled
}

beforeAll(() => {
  app = Consumer.install(join(dirs.make(), 'app'), pack(dirs.make()))
  for (const b of scripts) app.write(source(b), b.code)
}, 180_000)
afterAll(() => dirs.removeAll())

describe('the README', () => {
  it('has only blocks of known languages, and runnable TypeScript among them', () => {
    for (const b of blocks) expect(LANGS, `block at line ${b.line}`).toContain(b.lang)
    expect(blocks.filter((b) => b.lang === 'rust')).toHaveLength(1)
    expect(runnable.length).toBeGreaterThan(0)
    for (const heading of Object.keys(PRINTS)) {
      expect(runnable.map((b) => b.heading)).toContain(heading)
    }
  })

  it('type-checks every TypeScript and JavaScript block, partial ones included', () => {
    expect(scripts.some((b) => b.partial)).toBe(true)
    compile()
  })

  it.each(runnable)('runs the block under $heading (line $line) as printed', (b) => {
    compile()
    const printed = app.node(output(b), 60_000)
    if (PRINTS[b.heading] !== undefined) expect(printed).toBe(PRINTS[b.heading])
  })
})

describe('examples/', () => {
  it('holds the programs run here and the modules they use', () => {
    const all = [...Object.keys(PROGRAMS), ...MODULES].sort()
    expect(readdirSync(join(ROOT, 'examples')).sort()).toEqual(all)
  })

  it.each(Object.entries(PROGRAMS))('%s runs from the installed package', (name, prints) => {
    expect(app.node(join('node_modules', 'zongzi', 'examples', name), 60_000)).toBe(prints)
  })
})
