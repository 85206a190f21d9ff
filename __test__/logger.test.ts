import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'

import type { Logger } from '../ts/index'
import { bindLater, silent } from '../ts/coordinator/control/logger'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { waitUntil } from './helpers'

/** Record is a pino record as JSON. */
type Record = { [k: string]: unknown; msg?: string; level: number }

/** capture returns a pino logger at debug and the records it writes. */
function capture(): { logger: pino.Logger; records: Record[] } {
  const records: Record[] = []
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line))
      cb()
    },
  })
  return { logger: pino({ level: 'debug' }, out), records }
}

describe('a pino logger', () => {
  let c: OpsCluster | undefined
  afterAll(() => c?.stop())

  it('is an agent logger as it is, and gets records with their fields and host id', async () => {
    const { logger, records } = capture()
    // A pino logger is a Logger without adapting it (checked by the compiler).
    const asAgentLogger: Logger = logger
    c = await opsCluster('logger', (i) => (i === 0 ? { logger: asAgentLogger } : {}))
    const a = c.agents[0]
    const boot = await waitUntil(() =>
      records.find((r) => r.msg === 'bootstrapping shard 0' || r.msg === 'joining shard 0'),
    )
    expect(boot.hostId).toBe(a.hostId)
    expect(boot.level).toBe(30) // info
    const sh = await a.createShard('kv', { placement: { members: { count: 3 } } })
    const started = await waitUntil(() =>
      records.find((r) => r.msg === 'replica started' && r.shardId === sh.id),
    )
    expect(started).toMatchObject({ hostId: a.hostId, shardId: sh.id })
    expect(typeof started.replicaId).toBe('number')
  })
})

describe('bindLater', () => {
  it('logs through the base until the bindings are known, then through one child', () => {
    const seen: Array<[string, unknown, string | undefined]> = []
    let children = 0
    const base = (bound: object): Logger => ({
      debug: (f, m) => seen.push(['debug', { ...bound, ...f }, m]),
      info: (f, m) => seen.push(['info', { ...bound, ...f }, m]),
      warn: (f, m) => seen.push(['warn', { ...bound, ...f }, m]),
      error: (f, m) => seen.push(['error', { ...bound, ...f }, m]),
      child: (b) => {
        children++
        return base({ ...bound, ...b })
      },
    })
    let id = ''
    const log = bindLater(base({}), () => (id ? { hostId: id } : undefined))
    log.warn({ a: 1 }, 'before')
    id = 'h1'
    log.info({ b: 2 }, 'after')
    log.error({}, 'again')
    expect(seen).toEqual([
      ['warn', { a: 1 }, 'before'],
      ['info', { hostId: 'h1', b: 2 }, 'after'],
      ['error', { hostId: 'h1' }, 'again'],
    ])
    expect(children).toBe(1)
    expect(silent.child({ x: 1 })).toBe(silent)
  })
})
