// @ts-check
// Ports for processes that must name their addresses before they listen (peer lists): the
// tests, the chaos suites, the benchmarks and the demo all take theirs from here.
import { createServer } from 'node:net'

/** Below the kernel's ephemeral range (32768 and up here): nothing that binds port 0 gets these. */
const LOW = 20_000
const HIGH = 32_000

/**
 * tryPort resolves with whether `port` on 127.0.0.1 can be bound now.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
const tryPort = (port) =>
  new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })

/**
 * freePort finds a TCP port on 127.0.0.1 that is free now. It picks at random below the
 * ephemeral range, so that a port taken by another process's `listen(0)` between this check
 * and the listen that follows it cannot be the one.
 * @returns {Promise<number>}
 */
export async function freePort() {
  for (;;) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW))
    if (await tryPort(port)) return port
  }
}

/**
 * loopbackAddresses returns `n` addresses `127.0.0.1:<port>` on distinct free ports.
 * @param {number} n
 * @returns {Promise<string[]>}
 */
export async function loopbackAddresses(n) {
  /** @type {string[]} */
  const out = []
  while (out.length < n) {
    const a = `127.0.0.1:${await freePort()}`
    if (!out.includes(a)) out.push(a)
  }
  return out
}
