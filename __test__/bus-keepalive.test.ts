import { afterEach, describe, expect, it } from 'vitest'

import { BusClient } from '../ts/bus/client'
import { BusServer, type BusHandlers } from '../ts/bus/server'
import { CutProxy, waitUntil } from './helpers'

// Keepalive on the bus: a connection cut off without a word (a partition: no FIN, no RST, no
// answer; made here by a proxy that drops everything) fails its calls at both ends instead of
// leaving a watch hanging.

const open: Array<{ close(): unknown }> = []
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close()
})

/** A watch handler that answers once, then waits until its caller goes; it says when. */
function watcher() {
  const seen = { ended: false }
  const handlers = {
    admit: async () => {},
    async *watch(_shardId: number, _query: Buffer, signal: AbortSignal) {
      yield Buffer.from('first')
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))
      seen.ended = true
    },
  } as unknown as BusHandlers
  return { seen, handlers }
}

/** cutWatch starts a watch through a proxy, takes its first answer and cuts the proxy. */
async function cutWatch(clientKeepaliveMs: number, serverKeepaliveMs: number) {
  const { seen, handlers } = watcher()
  const server = new BusServer('c', handlers, { keepaliveMs: serverKeepaliveMs })
  open.push(server)
  const proxy = await CutProxy.start(await server.listen('127.0.0.1:0'))
  open.push(proxy)
  const client = new BusClient('c', { keepaliveMs: clientKeepaliveMs })
  open.push(client)
  const it = client.watch(proxy.address, 1, Buffer.from('q'))[Symbol.asyncIterator]()
  expect(String((await it.next()).value)).toBe('first')
  proxy.cut()
  return { seen, next: it.next() }
}

describe('keepalive on the bus', () => {
  it("fails a watch whose server went silent, by the client's pings", async () => {
    const { next } = await cutWatch(200, 3_600_000)
    const e = await next.then(
      () => undefined,
      (x) => x,
    )
    expect(e?.code).toMatch(/^ERR_(UNAVAILABLE|OUTCOME_UNKNOWN)$/)
  }, 20_000)

  it("ends a watch whose client went silent, by the server's pings", async () => {
    const { seen, next } = await cutWatch(3_600_000, 200)
    next.catch(() => {}) // the client learns once the server drops the connection
    await waitUntil(() => seen.ended, { what: 'the server to end the watch', timeoutMs: 15_000 })
  }, 20_000)
})
