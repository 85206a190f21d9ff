import { copyFileSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { platformPackages } from '../scripts/platforms/release.mjs'
import { Consumer, pack, ROOT, run } from './consumer'
import { TempDirs } from './helpers'

const dirs = new TempDirs('zongzi-pack-')
const work = dirs.make()
afterAll(() => dirs.removeAll())

const SCRIPT = (imp: string) => `${imp}
import_done()
async function main(Host) {
  const { mkdtempSync, rmSync } = require_('node:fs')
  const { join } = require_('node:path')
  const { tmpdir } = require_('node:os')
  class Kv {
    map = new Map()
    update(entries) {
      return entries.map((e) => {
        this.map.set('k', e.data.toString())
        return { value: this.map.size }
      })
    }
    query() { return Buffer.from(this.map.get('k') ?? '') }
    async saveSnapshot(out) { out.end(JSON.stringify([...this.map])) }
    async recoverFromSnapshot(input) {
      let s = ''
      for await (const c of input) s += c
      this.map = new Map(JSON.parse(s))
    }
  }
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'consumer-')))
  const hosts = dirs.map((dataDir) => Host.open({ clusterId: 5, dataDir, tickMs: 10 }))
  const voters = hosts.map((h, i) => ({ replicaId: i + 1, address: h.raftAddress }))
  await Promise.all(
    hosts.map((h, i) => h.startReplica(1, i + 1, { mode: 'bootstrap', voters }, () => new Kv())),
  )
  // No waiting for a leader first: a proposal waits for one within its deadline.
  await hosts[0].propose(1, Buffer.from('hello'))
  const got = await Promise.all(hosts.map((h) => h.read(1, Buffer.alloc(0))))
  await Promise.all(hosts.map((h) => h.close()))
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  console.log(got.map((b) => Buffer.from(b).toString()).join(','))
}
`

describe('the packed npm packages', () => {
  /** The consumer project the first test installs, which the next ones use. */
  let app: Consumer
  it('install without Rust and run a three-replica shard from ESM and CJS, typed', async () => {
    const tgz = await pack(work)
    expect(tgz).toHaveLength(2)
    app = await Consumer.install(join(work, 'app'), tgz)

    app.write(
      'esm.mjs',
      SCRIPT(`import { Host } from 'zongzi'
import { createRequire } from 'node:module'
const require_ = createRequire(import.meta.url)
const import_done = () => main(Host)`),
    )
    app.write(
      'cjs.cjs',
      SCRIPT(`const { Host } = require('zongzi')
const require_ = require
const import_done = () =>
  main(Host).catch((e) => {
    console.error(e)
    process.exit(1)
  })`),
    )
    expect((await app.node('esm.mjs')).trim()).toBe('hello,hello,hello')
    expect((await app.node('cjs.cjs')).trim()).toBe('hello,hello,hello')

    // Types resolve for both module systems.
    app.write(
      'types.mts',
      `import { Host, ZongziError, type StateMachine, type Entry, type ApplyResult } from 'zongzi'
class Counter implements StateMachine {
  n = 0
  update(entries: Entry[]): ApplyResult[] { return entries.map(() => ({ value: ++this.n })) }
  query(): Uint8Array { return Buffer.from(String(this.n)) }
  async saveSnapshot(): Promise<void> {}
  async recoverFromSnapshot(): Promise<void> {}
}
export async function use(h: Host): Promise<number> {
  await h.startReplica(1, 1, { mode: 'join' }, () => new Counter())
  const r = await h.propose(1, Buffer.from('x'), { timeoutMs: 1000 })
  const code: string = new ZongziError('ERR_TIMEOUT', 'x').code
  return r.value + code.length
}
`,
    )
    app.write(
      'types.cts',
      `import zongzi = require('zongzi')
export const open: typeof zongzi.Host.open = zongzi.Host.open
`,
    )
    await app.tsc(['types.mts', 'types.cts'])

    // Only the public API is exported: the package's inner modules are not importable.
    app.write(
      'private.cjs',
      `try { require('zongzi/dist/binding/native.js') } catch (e) { console.log(e.code) }`,
    )
    expect((await app.node('private.cjs')).trim()).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED')
  })

  it('export the state machine test kit from ESM and CommonJS, with types', async () => {
    const CHECK = `({
  factory: () => ({
    n: 0,
    update(entries) { return entries.map(() => ({ value: ++this.n })) },
    query() { return Buffer.from(String(this.n)) },
    async saveSnapshot(out) { out.end(String(this.n)) },
    async recoverFromSnapshot(input) { let s = ''; for await (const c of input) s += c; this.n = +s },
  }),
  commands: (r) => Buffer.from([r.int(256)]),
  entries: 50,
})`
    app.write(
      'kit.mjs',
      `import { checkStateMachine } from 'zongzi/testing'
const r = await checkStateMachine(${CHECK})
console.log(r.entries)`,
    )
    app.write(
      'kit.cjs',
      `const { checkStateMachine } = require('zongzi/testing')
checkStateMachine(${CHECK}).then((r) => console.log(r.entries))`,
    )
    expect((await app.node('kit.mjs')).trim()).toBe('50')
    expect((await app.node('kit.cjs')).trim()).toBe('50')
    app.write(
      'kit-types.mts',
      `import { CheckError, checkStateMachine, type CheckOptions, Random } from 'zongzi/testing'
export const o: Pick<CheckOptions, 'commands'> = { commands: (r: Random) => Buffer.from([r.int(9)]) }
export const run: typeof checkStateMachine = checkStateMachine
export const kind = (e: CheckError): string => e.kind
`,
    )
    await app.tsc(['kit-types.mts'])
  })
})

/** packed lists the files `npm pack` puts in the package of `dir`, without packing it. */
async function packed(dir: string): Promise<string[]> {
  const [report] = JSON.parse(await run('npm', ['pack', '--dry-run', '--json', '--silent'], dir))
  return (report.files as { path: string }[]).map((f) => f.path).sort()
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'))
const main = readJson(join(ROOT, 'package.json'))

describe('the npm package content', () => {
  it('is the built package, its licence and changelog; no sources, tests or binaries', async () => {
    const files = await packed(ROOT)
    const built = ['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/cli/certs.js']
    const kits = ['dist/testing/index.mjs', 'dist/recipes/index.d.mts', 'dist/cli/zongzi.js']
    for (const f of [...built, ...kits]) {
      expect(files).toContain(f)
    }
    for (const f of ['native/index.d.ts', 'proto/zongzi.proto', 'examples/kv.mjs']) {
      expect(files).toContain(f)
    }
    for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) {
      expect(files).toContain(f)
    }
    const shipped = (f: string) =>
      /^(dist|proto)\//.test(f) ||
      /^examples\/[^/]+\.(mjs|d\.mts)$/.test(f) ||
      ['native/index.d.ts', 'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'].includes(f)
    expect(files.filter((f) => !shipped(f))).toEqual([])
    // TypeScript only as declarations; no addon (it ships in the platform packages).
    expect(files.filter((f) => /(?<!\.d)\.m?ts$/.test(f) || f.endsWith('.node'))).toEqual([])
    expect(files.filter((f) => /(^|\/)(__test__|fixtures?|harness)\/|\.test\./.test(f))).toEqual([])
  })

  it('has one platform package per napi target, as `napi create-npm-dir` makes it', async () => {
    // Made afresh from package.json; npm/ holds the same, formatted by biome.
    const made = dirs.make()
    copyFileSync(join(ROOT, 'package.json'), join(made, 'package.json'))
    await run(join(ROOT, 'node_modules', '.bin', 'napi'), ['create-npm-dir', '-t', '.'], made)
    const names = readdirSync(join(made, 'npm')).sort()
    expect(names).toHaveLength(main.napi.triples.additional.length)
    expect(readdirSync(join(ROOT, 'npm')).sort()).toEqual(names)
    for (const name of names) {
      for (const f of readdirSync(join(ROOT, 'npm', name))) {
        expect(['package.json', 'README.md', `zongzi.${name}.node`]).toContain(f)
      }
      expect(readJson(join(ROOT, 'npm', name, 'package.json'))).toEqual(
        readJson(join(made, 'npm', name, 'package.json')),
      )
      expect(readFileSync(join(ROOT, 'npm', name, 'README.md'), 'utf8')).toBe(
        readFileSync(join(made, 'npm', name, 'README.md'), 'utf8'),
      )
    }
  })

  it('ships in a platform package only its manifest, README and binary', async () => {
    for (const p of platformPackages()) {
      // A copy with a stand-in binary: what is packed, without compressing a real one.
      const copy = join(dirs.make(), 'pkg')
      cpSync(p.dir, copy, { recursive: true, filter: (f) => !f.endsWith('.node') })
      const binary = p.binary.slice(p.dir.length + 1)
      writeFileSync(join(copy, binary), 'stand-in')
      expect(await packed(copy)).toEqual(['README.md', binary, 'package.json'].sort())
    }
  })

  it('references every platform package; a release refuses missing or wrong binaries', async () => {
    const root = dirs.make()
    copyFileSync(join(ROOT, 'package.json'), join(root, 'package.json'))
    cpSync(join(ROOT, 'npm'), join(root, 'npm'), {
      recursive: true,
      filter: (f) => !f.endsWith('.node'),
    })
    const release = async (command: string) => {
      try {
        await run(
          process.execPath,
          [join(ROOT, 'scripts', 'platforms', 'release.mjs'), command, '--root', root],
          root,
        )
        return ''
      } catch (e) {
        return (e as { stderr: string }).stderr
      }
    }
    expect(await release('prepare')).toBe('')
    const prepared = readJson(join(root, 'package.json'))
    const packages = platformPackages(root)
    expect(Object.keys(prepared.optionalDependencies).sort()).toEqual(
      packages.map((p) => p.name).sort(),
    )
    for (const v of Object.values(prepared.optionalDependencies)) expect(v).toBe(main.version)
    // The packed manifest is this one: the tarball references every binary package.
    expect(await packed(root)).toContain('package.json')

    // No binary at all: every package is named.
    const none = await release('verify')
    for (const p of packages) expect(none).toContain(`${p.name}: ${p.binary} is missing`)
    expect(none).toContain('refusing to publish')

    // The x86-64 glibc build in its own package and, wrongly, in the arm64 and musl ones.
    const x64 = join(ROOT, 'native', 'zongzi.linux-x64-gnu.node')
    const at = (name: string) => packages.find((p) => p.name === name)?.binary ?? ''
    copyFileSync(x64, at('zongzi-linux-x64-gnu'))
    copyFileSync(x64, at('zongzi-linux-arm64-gnu'))
    copyFileSync(x64, at('zongzi-linux-x64-musl'))
    const wrong = await release('verify')
    expect(wrong).not.toContain('zongzi-linux-x64-gnu:')
    expect(wrong).toContain(
      `zongzi-linux-arm64-gnu: ${at('zongzi-linux-arm64-gnu')} is for x64, not arm64`,
    )
    expect(wrong).toContain(
      `zongzi-linux-x64-musl: ${at('zongzi-linux-x64-musl')} links glibc libc, not musl`,
    )
    expect(wrong).toContain('zongzi-darwin-arm64:')
    expect(wrong).toContain('refusing to publish')
  })
})
