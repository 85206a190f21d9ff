// A consumer project: the packed npm packages installed into an empty directory, as a user
// installs them, with no Rust toolchain on the PATH of anything run there.
import { execFile } from 'node:child_process'
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

/** ROOT is the repository's root directory. */
export const ROOT = join(__dirname, '..')

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

/**
 * run runs a command in `cwd` and resolves to its standard output; it rejects if the command
 * fails. The test worker is not blocked meanwhile (installs take a while).
 */
export async function run(
  cmd: string,
  args: string[],
  cwd: string,
  timeoutMs = 120_000,
): Promise<string> {
  const r = await promisify(execFile)(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 1 << 24,
  })
  return r.stdout
}

/** pack packs the platform package (with the built binary) and the main package into `dir`. */
export async function pack(dir: string): Promise<string[]> {
  const platform = join(dir, 'platform')
  cpSync(join(ROOT, 'npm', 'linux-x64-gnu'), platform, { recursive: true })
  copyFileSync(
    join(ROOT, 'native', 'zongzi.linux-x64-gnu.node'),
    join(platform, 'zongzi.linux-x64-gnu.node'),
  )
  const tarballs = join(dir, 'tarballs')
  mkdirSync(tarballs)
  await run('npm', ['pack', '--silent', '--pack-destination', tarballs], platform)
  await run('npm', ['pack', '--silent', '--pack-destination', tarballs], ROOT)
  return readdirSync(tarballs).map((f) => join(tarballs, f))
}

/**
 * Consumer is a project in `dir` that installed the given tarballs without running scripts.
 * Dependencies come from the npm cache when it has them and from the registry otherwise, so
 * it works on a machine whose cache is empty.
 */
export class Consumer {
  private constructor(readonly dir: string) {}

  /** install creates the project in `dir` (which must not exist) and installs `tarballs`. */
  static async install(dir: string, tarballs: string[]): Promise<Consumer> {
    mkdirSync(dir)
    // @types/node is pinned to this repository's version so that the consumer type-checks
    // against the same declarations.
    const typesNode = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8'),
    ).version
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        version: '1.0.0',
        private: true,
        overrides: { '@types/node': typesNode },
      }),
    )
    await run(
      'npm',
      ['install', '--prefer-offline', '--ignore-scripts', '--no-package-lock', ...tarballs],
      dir,
    )
    return new Consumer(dir)
  }

  /** write writes a file into the project and returns its path. */
  write(name: string, content: string): string {
    const path = join(this.dir, name)
    writeFileSync(path, content)
    return path
  }

  /** node runs a script of the project with Node.js and returns what it printed. */
  node(script: string, timeoutMs?: number): Promise<string> {
    return run(process.execPath, [script], this.dir, timeoutMs)
  }

  /**
   * tsc type-checks `files` with strict settings for Node.js modules (`nodenext`); with
   * `outDir` it also emits JavaScript there.
   */
  async tsc(files: string[], outDir?: string): Promise<void> {
    const options = {
      strict: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      allowJs: true,
      checkJs: true,
      ...(outDir ? { outDir, rootDir: '.' } : { noEmit: true }),
    }
    const config = this.write('tsconfig.json', JSON.stringify({ compilerOptions: options, files }))
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    try {
      await run(process.execPath, [tsc, '-p', config], this.dir)
    } catch (e) {
      // tsc reports errors on its standard output.
      throw new Error(`type errors:\n${(e as { stdout?: string }).stdout ?? e}`)
    }
  }
}
