// Loads the native binding on first use: the local build (native/) first, then the platform
// package npm installed as an optional dependency (one per platform, as napi-rs's package
// template lays them out). Nothing is loaded when this module is imported, so the pure
// JavaScript parts of the package (ZongziError, the registry's types, zongzi-certs --help) work
// where the addon is missing; the first native call then fails with ERR_NATIVE_UNAVAILABLE,
// naming the platform and the package it looked for.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type {
  createCertificateAuthority as createCertificateAuthorityFn,
  createHostCertificate as createHostCertificateFn,
  NativeHost as NativeHostClass,
} from '../../native/index'
import { ZongziError } from './errors'

export type {
  HostOptions as NativeHostOptions,
  MembershipInfo,
  ReplicaStatus,
  StoredReplica,
} from '../../native/index'

/** Native is what the addon exports. */
interface Native {
  NativeHost: typeof NativeHostClass
  createCertificateAuthority: typeof createCertificateAuthorityFn
  createHostCertificate: typeof createHostCertificateFn
}

/** ROOT is the package's root directory (from ts/binding/ and from dist/binding/ alike). */
const ROOT = join(__dirname, '..', '..')
const requireHere = createRequire(__filename)

/**
 * isMusl tells whether this Linux process runs on musl libc (Alpine) rather than glibc. The
 * ldd script names its libc; where it cannot be read, the process report's header has a glibc
 * version only on glibc. (The same checks, in the same order, as napi-rs's generated loader.)
 */
export function isMusl(): boolean {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // No readable ldd: ask the process report.
  }
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined
  if (!report || typeof report.getReport !== 'function') return false
  // Network interfaces make a report slow on some machines, and the header is all we need.
  report.excludeNetwork = true
  const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  return !header?.glibcVersionRuntime
}

/**
 * platformSuffix is the napi-rs name of this platform (`linux-arm64-musl`, `darwin-x64`,
 * `win32-x64-msvc`, …): the suffix of the binary's file name and of its package's name.
 */
export function platformSuffix(
  platform: string = process.platform,
  arch: string = process.arch,
  musl: () => boolean = isMusl,
): string {
  if (platform === 'linux') return `linux-${arch}-${musl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** PACKAGE_PREFIX starts the name of every platform package. */
const PACKAGE_PREFIX = 'zongzi-'

/** ARCH maps the architecture of a Rust target triple to Node's name for it. */
const ARCH: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }

/**
 * prebuiltPlatforms lists the platforms a binary package is released for: the Rust targets of
 * package.json's `napi.triples` (the one list of them), by their napi-rs names.
 */
export function prebuiltPlatforms(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    napi?: { triples?: { additional?: string[] } }
  }
  return (pkg.napi?.triples?.additional ?? []).map((triple) => {
    const [arch, , os, abi] = triple.split('-')
    const node = ARCH[arch] ?? arch
    if (os === 'darwin') return `darwin-${node}`
    if (os === 'windows') return `win32-${node}-${abi}`
    return `${os}-${node}-${abi}`
  })
}

/**
 * load loads the addon for this platform, or throws an error that names the platform, the
 * package it looked for, what to do, and why each candidate failed.
 */
function load(): Native {
  const suffix = platformSuffix()
  const pkg = `${PACKAGE_PREFIX}${suffix}`
  const errors: string[] = []
  for (const candidate of [join(ROOT, 'native', `zongzi.${suffix}.node`), pkg]) {
    try {
      return requireHere(candidate) as Native
    } catch (e) {
      errors.push(`  ${candidate}: ${(e as Error).message.split('\n')[0]}`)
    }
  }
  const platforms = prebuiltPlatforms()
  const libc = suffix.endsWith('-musl') ? ' (musl)' : suffix.endsWith('-gnu') ? ' (glibc)' : ''
  const what = `${process.platform}-${process.arch}${libc}`
  const why = platforms.includes(suffix)
    ? [
        `the package ${pkg}, which npm installs for it as an optional dependency, is missing or`,
        'cannot load (was it installed with --omit=optional, or copied from another platform?',
        'Reinstall zongzi on this machine)',
      ]
    : [
        `there is no prebuilt binary for it (looked for the package ${pkg}); prebuilt ones`,
        `exist for ${platforms.join(', ')}. On any other platform, build the addon from`,
        'source (Rust and @napi-rs/cli: npm run build:native in a clone of the repository)',
      ]
  throw new Error(
    `zongzi cannot load its native addon on ${what}: ${why.join(' ')}\n${errors.join('\n')}`,
  )
}

let native: Native | undefined
let failure: string | undefined

/**
 * loaded returns the addon, loading it on the first call. A failure is remembered and thrown
 * again, as a new error (with the caller's stack), by every later call.
 */
function loaded(): Native {
  if (native) return native
  if (failure === undefined) {
    try {
      native = load()
      return native
    } catch (e) {
      failure = (e as Error).message
    }
  }
  throw new ZongziError('ERR_NATIVE_UNAVAILABLE', failure)
}

/** bound returns the addon's `key` of `target`, with functions bound to it. */
function bound(target: object, key: string | symbol): unknown {
  const v = Reflect.get(target, key)
  return typeof v === 'function' ? v.bind(target) : v
}

/** NativeHost is the binding's host class, loaded on first use. */
export const NativeHost: typeof NativeHostClass = new Proxy(
  function NativeHost() {} as unknown as typeof NativeHostClass,
  {
    get: (_, key) => bound(loaded().NativeHost, key),
    has: (_, key) => Reflect.has(loaded().NativeHost, key),
    construct: (_, args) => Reflect.construct(loaded().NativeHost, args),
  },
)
/** NativeHost instance type. */
export type NativeHost = NativeHostClass

/** nativeCertificates makes a cluster CA and host certificates (rcgen in the addon). */
export const nativeCertificates = {
  authority: (...args: Parameters<typeof createCertificateAuthorityFn>) =>
    loaded().createCertificateAuthority(...args),
  host: (...args: Parameters<typeof createHostCertificateFn>) =>
    loaded().createHostCertificate(...args),
}
