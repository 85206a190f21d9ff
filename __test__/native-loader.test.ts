// The loader of the native addon (ts/binding/native.ts): which package it looks for on each
// platform, and an installed package whose addon is missing, where the pure JavaScript parts
// still work and the first native call fails with ERR_NATIVE_UNAVAILABLE.
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { isMusl, platformSuffix, prebuiltPlatforms } from '../ts/binding/native'
import { TempDirs } from './helpers'

const ROOT = join(__dirname, '..')
const dirs = new TempDirs('zongzi-loader-')
afterAll(() => dirs.removeAll())

describe('the native loader', () => {
  it('names the package of each platform as napi-rs does, musl apart from glibc', () => {
    expect(platformSuffix('linux', 'x64', () => false)).toBe('linux-x64-gnu')
    expect(platformSuffix('linux', 'arm64', () => true)).toBe('linux-arm64-musl')
    expect(platformSuffix('darwin', 'arm64')).toBe('darwin-arm64')
    expect(platformSuffix('win32', 'x64')).toBe('win32-x64-msvc')
    expect(platformSuffix('freebsd', 'x64')).toBe('freebsd-x64')
  })

  it('knows a prebuilt package for every platform the release builds', () => {
    expect(prebuiltPlatforms().sort()).toEqual([
      'darwin-arm64',
      'darwin-x64',
      'linux-arm64-gnu',
      'linux-arm64-musl',
      'linux-x64-gnu',
      'linux-x64-musl',
      'win32-x64-msvc',
    ])
  })

  it('tells musl from glibc as the process report does', () => {
    if (process.platform !== 'linux') return
    const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } })
      .header
    expect(isMusl()).toBe(!header.glibcVersionRuntime)
  })
})

describe('a package installed without its native addon', () => {
  // The built package (dist/) as npm lays it out, without native/*.node and without any
  // platform package beside it.
  const app = dirs.make()
  const pkg = join(app, 'node_modules', 'zongzi')
  const built = existsSync(join(ROOT, 'dist', 'index.js'))
  if (built) {
    mkdirSync(join(pkg, 'native'), { recursive: true })
    for (const p of ['package.json', 'dist', 'proto', 'examples']) {
      cpSync(join(ROOT, p), join(pkg, p), { recursive: true })
    }
    cpSync(join(ROOT, 'native', 'index.d.ts'), join(pkg, 'native', 'index.d.ts'))
  }
  // The package's dependencies (grpc-js, proto-loader) come from the repository's node_modules;
  // no platform package is there.
  const env = { ...process.env, NODE_PATH: join(ROOT, 'node_modules') }
  const node = (script: string, preamble = ''): { out: string; code: number } => {
    writeFileSync(join(app, 'main.cjs'), `${preamble}\n${script}`)
    try {
      return {
        out: execFileSync(process.execPath, ['main.cjs'], {
          cwd: app,
          env,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        code: 0,
      }
    } catch (e) {
      const err = e as { stdout: string; stderr: string; status: number }
      return { out: err.stdout + err.stderr, code: err.status }
    }
  }

  it.skipIf(!built)(
    'imports, and fails at the first native call with a typed error naming the package',
    () => {
      const r = node(`
const z = require('zongzi')
const e = new z.ZongziError('ERR_TIMEOUT', 'x')
console.log(e instanceof Error, e.code, typeof z.Agent, typeof z.RegistryState)
for (const f of [() => z.Host.open({ clusterId: 1, dataDir: 'd' }), () => z.createCertificateAuthority()]) {
  try {
    f()
  } catch (err) {
    console.log(err instanceof z.ZongziError, err.code, err.outcome, err.retrySafe)
    console.log(err.message)
  }
}`)
      expect(r.code).toBe(0)
      const lines = r.out.split('\n')
      expect(lines[0]).toBe('true ERR_TIMEOUT function function')
      expect(lines[1]).toBe('true ERR_NATIVE_UNAVAILABLE not-applied false')
      const suffix = platformSuffix()
      expect(r.out).toContain(
        `zongzi cannot load its native addon on ${process.platform}-${process.arch}`,
      )
      expect(r.out).toContain(`the package zongzi-${suffix}`)
      expect(
        r.out.split('\n').filter((l) => l === 'true ERR_NATIVE_UNAVAILABLE not-applied false'),
      ).toHaveLength(2)
    },
  )

  it.skipIf(!built)(
    'on a platform without a prebuilt binary, says so and lists those there are',
    () => {
      const r = node(
        `try { require('zongzi').createCertificateAuthority() } catch (e) { console.log(e.code); console.log(e.message) }`,
        `Object.defineProperty(process, 'platform', { value: 'freebsd' })`,
      )
      expect(r.out).toContain('ERR_NATIVE_UNAVAILABLE')
      expect(r.out).toContain('zongzi cannot load its native addon on freebsd-')
      expect(r.out).toContain(
        'there is no prebuilt binary for it (looked for the package zongzi-freebsd-',
      )
      expect(r.out).toContain('linux-arm64-musl')
      expect(r.out).toContain('win32-x64-msvc')
    },
  )

  it.skipIf(!built)(
    'runs zongzi-certs far enough to print its usage, and names the addon when it needs it',
    () => {
      const cli = join(pkg, 'dist', 'cli', 'certs.js')
      const usage = node(`process.argv.push('--out', 'x'); require(${JSON.stringify(cli)})`)
      expect(usage.out).toContain('usage: zongzi-certs')
      const made = node(
        `process.argv.push('--out', 'certs', '--hosts', '127.0.0.1'); require(${JSON.stringify(cli)})`,
      )
      expect(made.code).not.toBe(0)
      expect(made.out).toContain('zongzi cannot load its native addon')
      expect(existsSync(join(app, 'certs', 'ca.key'))).toBe(false)
    },
  )
})
