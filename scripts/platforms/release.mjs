// The platform packages of a release: what npm/<platform>/ holds, whether each binary is there
// and built for its package's platform, and the main package's optionalDependencies.
//
//   node scripts/platforms/release.mjs verify    every binary present and of its platform
//   node scripts/platforms/release.mjs prepare   write optionalDependencies and versions
//
// `prepare` is the step of napi-rs's `napi prepublish` that writes package.json; the release
// workflow runs it, then `verify`, which refuses (exit 1) when any binary is missing or is
// not what its package says, before anything is published. package.json's prepublishOnly
// runs `verify` too, so a plain `npm publish` from a machine without every binary fails.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** ROOT is the repository's root directory. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const writeJson = (path, value) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)

/**
 * platformPackages lists the platform packages under `root`/npm: each one's directory, name,
 * binary (its `main`) and the os, cpu and libc it is for.
 */
export function platformPackages(root = ROOT) {
  return readdirSync(join(root, 'npm'))
    .sort()
    .map((dir) => {
      const pkg = readJson(join(root, 'npm', dir, 'package.json'))
      return {
        dir: join(root, 'npm', dir),
        name: pkg.name,
        version: pkg.version,
        binary: join(root, 'npm', dir, pkg.main),
        os: pkg.os[0],
        cpu: pkg.cpu[0],
        libc: pkg.libc?.[0],
      }
    })
}

const ELF_MACHINE = new Map([
  [0x3e, 'x64'],
  [0xb7, 'arm64'],
])
const MACHO_CPU = new Map([
  [0x01000007, 'x64'],
  [0x0100000c, 'arm64'],
])
const PE_MACHINE = new Map([
  [0x8664, 'x64'],
  [0xaa64, 'arm64'],
])

/** elfNeeded returns the DT_NEEDED libraries of a 64-bit little-endian ELF file. */
function elfNeeded(b) {
  const phoff = Number(b.readBigUInt64LE(0x20))
  const phentsize = b.readUInt16LE(0x36)
  const phnum = b.readUInt16LE(0x38)
  const loads = []
  let dynamic
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize
    const type = b.readUInt32LE(h)
    const seg = {
      offset: Number(b.readBigUInt64LE(h + 8)),
      vaddr: Number(b.readBigUInt64LE(h + 16)),
      filesz: Number(b.readBigUInt64LE(h + 32)),
    }
    if (type === 1) loads.push(seg)
    if (type === 2) dynamic = seg
  }
  if (!dynamic) return []
  const fileOffset = (vaddr) => {
    const seg = loads.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
    return seg ? vaddr - seg.vaddr + seg.offset : undefined
  }
  const needed = []
  let strtab
  for (let o = dynamic.offset; o < dynamic.offset + dynamic.filesz; o += 16) {
    const tag = Number(b.readBigInt64LE(o))
    const val = Number(b.readBigUInt64LE(o + 8))
    if (tag === 0) break
    if (tag === 1) needed.push(val)
    if (tag === 5) strtab = fileOffset(val)
  }
  if (strtab === undefined) return []
  return needed.map((n) => {
    const start = strtab + n
    return b.toString('latin1', start, b.indexOf(0, start))
  })
}

/**
 * inspect reads a binary's headers: its format (elf, macho, pe), its architecture in Node's
 * names, and for ELF the libc it links (glibc or musl) and whether it is a shared object.
 */
export function inspect(path) {
  const b = readFileSync(path)
  if (b.readUInt32BE(0) === 0x7f454c46) {
    if (b[4] !== 2 || b[5] !== 1) return { format: 'elf', arch: 'not 64-bit little-endian' }
    const needed = elfNeeded(b)
    const libc = needed.includes('libc.so.6') ? 'glibc' : needed.includes('libc.so') ? 'musl' : '?'
    return {
      format: 'elf',
      os: 'linux',
      arch: ELF_MACHINE.get(b.readUInt16LE(18)) ?? `machine ${b.readUInt16LE(18)}`,
      libc,
      shared: b.readUInt16LE(16) === 3,
    }
  }
  if (b.readUInt32LE(0) === 0xfeedfacf) {
    return {
      format: 'macho',
      os: 'darwin',
      arch: MACHO_CPU.get(b.readUInt32LE(4)) ?? 'unknown cpu',
    }
  }
  if (b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c)
    if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') return { format: 'MZ without PE' }
    const machine = b.readUInt16LE(pe + 4)
    return { format: 'pe', os: 'win32', arch: PE_MACHINE.get(machine) ?? `machine ${machine}` }
  }
  return { format: 'unknown' }
}

/** problems lists what is wrong with the binary of platform package `p`; empty when nothing. */
export function problems(p) {
  if (!existsSync(p.binary)) return [`${p.name}: ${p.binary} is missing`]
  const got = inspect(p.binary)
  const out = []
  if (got.os !== p.os) out.push(`is ${got.format} (${got.os ?? '?'}), not a ${p.os} binary`)
  if (got.arch !== p.cpu) out.push(`is for ${got.arch}, not ${p.cpu}`)
  if (p.libc && got.libc !== p.libc) out.push(`links ${got.libc} libc, not ${p.libc}`)
  if (got.format === 'elf' && !got.shared) out.push('is not a shared object')
  return out.map((m) => `${p.name}: ${p.binary} ${m}`)
}

/**
 * verify returns every problem of the release under `root`: a platform package whose binary
 * is missing or wrong, or whose version is not the main package's, and a main package whose
 * optionalDependencies do not name exactly the platform packages at its version.
 */
export function verify(root = ROOT) {
  const main = readJson(join(root, 'package.json'))
  const packages = platformPackages(root)
  const out = packages.flatMap(problems)
  for (const p of packages) {
    if (p.version !== main.version) out.push(`${p.name} is ${p.version}, not ${main.version}`)
  }
  const want = Object.fromEntries(packages.map((p) => [p.name, main.version]))
  const have = main.optionalDependencies ?? {}
  if (
    JSON.stringify(have, Object.keys(have).sort()) !==
    JSON.stringify(want, Object.keys(want).sort())
  ) {
    out.push(
      `package.json optionalDependencies are ${JSON.stringify(have)}, not ${JSON.stringify(want)}`,
    )
  }
  return out
}

/**
 * prepare writes, under `root`, the main package's optionalDependencies (every platform
 * package at the main package's version) and that version into every platform package.
 */
export function prepare(root = ROOT) {
  const mainPath = join(root, 'package.json')
  const main = readJson(mainPath)
  const packages = platformPackages(root)
  for (const p of packages) {
    const path = join(p.dir, 'package.json')
    writeJson(path, { ...readJson(path), version: main.version })
  }
  main.optionalDependencies = Object.fromEntries(packages.map((p) => [p.name, main.version]))
  writeJson(mainPath, main)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, flag, dir] = process.argv.slice(2)
  const root = flag === '--root' ? dir : ROOT
  if (command === 'prepare') {
    prepare(root)
  } else if (command === 'verify') {
    const found = verify(root)
    for (const p of found) console.error(p)
    if (found.length > 0) {
      console.error(`refusing to publish: ${found.length} problem(s) with the platform packages`)
      process.exit(1)
    }
    console.log(`${platformPackages(root).length} platform packages ready`)
  } else {
    console.error('usage: node scripts/platforms/release.mjs verify|prepare [--root DIR]')
    process.exit(2)
  }
}
