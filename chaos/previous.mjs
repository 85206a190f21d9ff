// The build a rolling upgrade starts from. There is no earlier release to take it from yet, so it
// is this build with its newest registry format one lower: a copy of dist/ whose REGISTRY_VERSION
// is patched from N to N - 1, beside copies of the chaos agent and what it imports. Such a host
// writes registry commands and snapshots in format N - 1 (format 1 is the layout of the builds
// before versions: no `v`, no snapshot `version`), records that it reads only N - 1, and refuses
// format N. Every other format (bus, transport, session tables) is still at its first version, so
// this copy speaks them as this build does. The native addon and the packages are this build's,
// linked.
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = join(HERE, '..')

/** PATTERN finds the constant in the compiled dist/binding/versions.js. */
const PATTERN = /exports\.REGISTRY_VERSION = (\d+);/

/**
 * previousBuild lays the previous build out in `root`/previous and returns its chaos agent's
 * script and the registry formats of both builds. It throws when the constant is not where
 * it is looked for (a build that changed its layout), rather than start an unpatched copy.
 */
export function previousBuild(root) {
  const dir = join(root, 'previous')
  mkdirSync(dir, { recursive: true })
  for (const d of ['dist', 'proto', 'chaos', 'examples', 'harness'])
    cpSync(join(REPO, d), join(dir, d), { recursive: true })
  cpSync(join(REPO, 'package.json'), join(dir, 'package.json'))
  for (const d of ['native', 'node_modules']) symlinkSync(join(REPO, d), join(dir, d), 'dir')
  const file = join(dir, 'dist', 'binding', 'versions.js')
  const text = readFileSync(file, 'utf8')
  const found = PATTERN.exec(text)
  if (!found) throw new Error(`REGISTRY_VERSION not found in ${file}`)
  const current = Number(found[1])
  const previous = current - 1
  if (previous < 1) throw new Error(`no registry format before ${current}`)
  writeFileSync(file, text.replace(PATTERN, `exports.REGISTRY_VERSION = ${previous};`))
  return { script: join(dir, 'chaos', 'agent.mjs'), previous, current }
}
