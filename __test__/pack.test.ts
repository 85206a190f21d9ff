import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { TempDirs } from './helpers'

const ROOT = join(__dirname, '..')
const dirs = new TempDirs('zongzi-pack-')
const work = dirs.make()
afterAll(() => dirs.removeAll())

// No Rust toolchain on the PATH of anything run in the consumer project.
const PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((p) => !p.includes('.cargo'))
  .join(delimiter)
const env = {
  ...process.env,
  PATH,
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

const SCRIPT = (imp: string) => `${imp}
import_done()
async function main(Host) {
  const { mkdtempSync } = require_('node:fs')
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
  const hosts = [0, 1, 2].map(() =>
    Host.open({ clusterId: 5, dataDir: mkdtempSync(join(tmpdir(), 'consumer-')), tickMs: 10 }),
  )
  const voters = hosts.map((h, i) => ({ replicaId: i + 1, address: h.raftAddress }))
  await Promise.all(
    hosts.map((h, i) => h.startReplica(1, i + 1, { mode: 'bootstrap', voters }, () => new Kv())),
  )
  for (let i = 0; ; i++) {
    try {
      await hosts[0].propose(1, Buffer.from('hello'))
      break
    } catch (e) {
      if (i > 400) throw e
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  const got = await Promise.all(hosts.map((h) => h.read(1, Buffer.alloc(0))))
  await Promise.all(hosts.map((h) => h.close()))
  console.log(got.map((b) => Buffer.from(b).toString()).join(','))
}
`

describe('the packed npm packages', () => {
  it('install without Rust and run a three-replica shard from ESM and CommonJS, with types', () => {
    // Pack the platform package with the built binary, and the main package.
    const platform = join(work, 'platform')
    cpSync(join(ROOT, 'npm', 'linux-x64-gnu'), platform, { recursive: true })
    copyFileSync(
      join(ROOT, 'native', 'zongzi.linux-x64-gnu.node'),
      join(platform, 'zongzi.linux-x64-gnu.node'),
    )
    const tarballs = join(work, 'tarballs')
    mkdirSync(tarballs)
    run('npm', ['pack', '--silent', '--pack-destination', tarballs], platform)
    run('npm', ['pack', '--silent', '--pack-destination', tarballs], ROOT)
    const tgz = readdirSync(tarballs).map((f) => join(tarballs, f))
    expect(tgz).toHaveLength(2)

    // A fresh consumer project installs both tarballs without running scripts.
    const app = join(work, 'app')
    mkdirSync(app)
    // Dependencies come from the cache when it has them and from the registry otherwise, so
    // the test passes on a machine whose npm cache is empty. @types/node is pinned to this
    // repository's version so that the consumer type-checks against the same declarations.
    const typesNode = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8'),
    ).version
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        version: '1.0.0',
        private: true,
        overrides: { '@types/node': typesNode },
      }),
    )
    run(
      'npm',
      ['install', '--prefer-offline', '--ignore-scripts', '--no-package-lock', ...tgz],
      app,
    )

    writeFileSync(
      join(app, 'esm.mjs'),
      SCRIPT(`import { Host } from 'zongzi'
import { createRequire } from 'node:module'
const require_ = createRequire(import.meta.url)
const import_done = () => main(Host)`),
    )
    writeFileSync(
      join(app, 'cjs.cjs'),
      SCRIPT(`const { Host } = require('zongzi')
const require_ = require
const import_done = () =>
  main(Host).catch((e) => {
    console.error(e)
    process.exit(1)
  })`),
    )
    expect(run(process.execPath, ['esm.mjs'], app).trim()).toBe('hello,hello,hello')
    expect(run(process.execPath, ['cjs.cjs'], app).trim()).toBe('hello,hello,hello')

    // Types resolve for both module systems.
    writeFileSync(
      join(app, 'types.mts'),
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
    writeFileSync(
      join(app, 'types.cts'),
      `import zongzi = require('zongzi')
export const open: typeof zongzi.Host.open = zongzi.Host.open
`,
    )
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['types.mts', 'types.cts'],
      }),
    )
    run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      app,
    )
  })
})
