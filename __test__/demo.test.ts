import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

// `npm run demo` (after the build): three agent processes over mutual TLS, a workload, and a
// clean shutdown.

describe('the demo', () => {
  it('runs three agents over mutual TLS and stops cleanly, printing no warning', async () => {
    const script = join(__dirname, '..', 'examples', 'demo', 'demo.mjs')
    const [out, err] = await new Promise<[string, string]>((resolve, reject) => {
      const env = { ...process.env, DEMO_SECONDS: '1' }
      execFile(process.execPath, [script], { env, timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve([stdout, stderr]),
      )
    })
    // A correct program prints no warnings (Node's DEP0123 for a TLS server name that is an
    // IP address was one, once per agent).
    expect(err).not.toMatch(/Warning/)
    expect(out).toMatch(/3 agents started/)
    expect(out).toMatch(/over mutual TLS/)
    expect(out).toMatch(/status page: https:\/\/127\.0\.0\.1:\d+\//)
    expect(out).toMatch(/linearizable reads in/)
    expect(out).toMatch(/stopped; data removed/)
  }, 90_000)
})
