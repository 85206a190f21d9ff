// Every TypeScript and JavaScript block of the project's Markdown files (the README, docs/,
// ARCHITECTURE.md and the READMEs beside the code), and every program in examples/, run as
// printed from a fresh install of the packed packages. The one Rust block, in the README, is
// crates/engine/examples/readme.rs, which crates/engine/tests/readme.rs runs.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Consumer, pack, ROOT } from './consumer'
import { TempDirs } from './helpers'
import { type Block, codeBlocks } from './readme-blocks'

/** DOCS lists the Markdown files whose blocks are tested: every one the project has. */
const DOCS = [
  'README.md',
  'ARCHITECTURE.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
  'crates/engine/README.md',
  'chaos/README.md',
  'bench/README.md',
  '__test__/README.md',
]

/** DocBlock is a code block and the Markdown file it is in. */
interface DocBlock extends Block {
  file: string
}

const blocks: DocBlock[] = DOCS.flatMap((file) =>
  codeBlocks(readFileSync(join(ROOT, file), 'utf8')).map((b) => ({ ...b, file })),
)
const scripts = blocks.filter((b) => b.lang === 'ts' || b.lang === 'js')
const runnable = scripts.filter((b) => !b.partial)
/** The languages a block may have; ts, js and rust blocks are tested. */
const LANGS = ['ts', 'js', 'rust', 'sh', '']

/** What a runnable block prints, by its file and the heading it stands under. */
const PRINTS: Record<string, string> = {
  'README.md: A first program': 'admin\n',
  'docs/host-api.md: The host API (TypeScript)': '5 5\n',
  'docs/recipes.md: Recipes':
    'feature/export=off feature/search=on\nrefused: now on\nsession/alice expired\n',
  'docs/testing.md: Testing state machines':
    '300 entries, 6 restarts: agreed\nresult diverged at entry 1\n',
  'docs/state-machines.md: Typed state machines': 'admin admin\n',
  'docs/agent.md: Development mode and tests': 'v\n',
}
const where = (b: DocBlock) => `${b.file}: ${b.heading}`

/** The programs in examples/ and what each prints; the other files are modules they import. */
const PROGRAMS: Record<string, string> = {
  'agents.mjs': 'applied: 1 key(s)\nread: alice is admin\nwatch: alice became owner\n',
}
const MODULES = ['kv.mjs', 'kv.d.mts', 'typed-kv.mjs', 'typed-kv.d.mts']
/** examples/demo/ is `npm run demo` (demo.test.ts runs it); it is not in the package. */
const DEMO = 'demo'
/** examples/sqlite/ is the SQLite state machine (sqlite.test.ts runs it); not in the package. */
const SQLITE = 'sqlite'

const name = (b: DocBlock) => `${b.file.replace(/[^A-Za-z0-9]+/g, '-')}-${b.line}`
const source = (b: DocBlock) => `${name(b)}.${b.lang === 'ts' ? 'mts' : 'mjs'}`
const output = (b: DocBlock) => join('out', `${name(b)}.mjs`)

const dirs = new TempDirs('zongzi-readme-')
let app: Consumer
let compiled: Error | true | undefined

/** compile type-checks every block and emits JavaScript into out/, once. */
async function compile(): Promise<void> {
  if (compiled === undefined) {
    try {
      await app.tsc(scripts.map(source), 'out')
      compiled = true
    } catch (e) {
      compiled = e as Error
    }
  }
  if (compiled !== true) throw compiled
}

beforeAll(async () => {
  app = await Consumer.install(join(dirs.make(), 'app'), await pack(dirs.make()))
  for (const b of scripts) app.write(source(b), b.code)
}, 180_000)
afterAll(() => dirs.removeAll())

describe('the Markdown files', () => {
  it('each open with a title', () => {
    for (const file of DOCS) {
      expect(readFileSync(join(ROOT, file), 'utf8'), file).toMatch(/^# \S/)
    }
  })

  it('have only blocks of known languages, and runnable TypeScript among them', () => {
    for (const b of blocks) expect(LANGS, `block at ${b.file}:${b.line}`).toContain(b.lang)
    const rust = blocks.filter((b) => b.lang === 'rust')
    expect(rust.map((b) => b.file)).toEqual(['crates/engine/README.md'])
    expect(runnable.length).toBeGreaterThan(0)
    for (const heading of Object.keys(PRINTS)) {
      expect(runnable.map(where)).toContain(heading)
    }
  })

  it('type-check every TypeScript and JavaScript block, partial ones included', async () => {
    expect(scripts.some((b) => b.partial)).toBe(true)
    await compile()
  })

  it.each(runnable)('run the block under $heading ($file, line $line) as printed', async (b) => {
    await compile()
    const printed = await app.node(output(b), 60_000)
    if (PRINTS[where(b)] !== undefined) expect(printed).toBe(PRINTS[where(b)])
  })
})

describe('examples/', () => {
  it('holds the programs run here and the modules they use', () => {
    const all = [...Object.keys(PROGRAMS), ...MODULES, DEMO, SQLITE].sort()
    expect(readdirSync(join(ROOT, 'examples')).sort()).toEqual(all)
  })

  it.each(Object.entries(PROGRAMS))('%s runs from the installed package', async (name, prints) => {
    expect(await app.node(join('node_modules', 'zongzi', 'examples', name), 60_000)).toBe(prints)
  })
})
