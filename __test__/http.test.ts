import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  Agent,
  type ClusterStatus,
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
  ZongziError,
} from '../ts/index'
import { type HttpContext, OpsServer } from '../ts/ops/http'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { codeOf, TempDirs, waitUntil } from './helpers'

/** HOSTILE is a tag value and shard name that would run script if a page printed it as HTML. */
const HOSTILE = '<img src=x onerror="window.pwned=1"></script><script>window.pwned=2</script>'

/** sample returns the value of the series line `series` in a scrape. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('the HTTP endpoints', () => {
  let c: OpsCluster
  let base: string
  beforeAll(async () => {
    c = await opsCluster('http', (i) => ({
      httpAddress: '127.0.0.1:0',
      tags: { zone: `z${i}`, ...(i === 0 ? { note: HOSTILE } : {}) },
    }))
    base = `http://${c.agents[0].httpAddress}`
  }, 60_000)
  afterAll(() => c?.stop())

  it('listen where asked, and off loopback only with TLS or insecure', async () => {
    for (const a of c.agents) expect(a.httpAddress).toMatch(/^127\.0\.0\.1:\d+$/)
    const o = { dataDir: '/nonexistent', httpAddress: '0.0.0.0:8080' }
    expect(await codeOf(() => new Agent('x', c.peers, o))).toBe('ERR_INVALID_ARGUMENT')
    expect(new Agent('x', c.peers, { ...o, insecure: true }).httpAddress).toBe('')
  })

  it('serve health and readiness', async () => {
    const h = await fetch(`${base}/healthz`)
    expect([h.status, await h.text()]).toEqual([200, 'ok\n'])
    const r = await fetch(`${base}/readyz`)
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual({
      ready: true,
      checks: { started: true, registered: true, registry: true },
    })
  })

  it('serve the metrics, moving with the writes', async () => {
    const scrape = async () => {
      const r = await fetch(`${base}/metrics`)
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/)
      return r.text()
    }
    const before = await scrape()
    expect(sample(before, 'zongzi_hosts{status="active"}')).toBe(3)
    const sh = await c.agents[1].createShard('kv', { placement: { members: { count: 3 } } })
    await c.agents[0].waitForShard(sh.id)
    const after = await scrape()
    const index = (t: string) => sample(t, 'zongzi_registry_index') ?? 0
    expect(index(after)).toBeGreaterThan(index(before))
    const added = (t: string) => sample(t, 'zongzi_membership_changes_total{change="added"}') ?? 0
    expect(added(after)).toBeGreaterThanOrEqual(added(before) + 3)
  })

  it('serve the status with user input as data, and a page that holds none of it', async () => {
    await c.agents[0].createShard('kv', { name: HOSTILE, placement: { members: { count: 1 } } })
    const s = await fetch(`${base}/status.json`)
    expect(s.headers.get('content-type')).toBe('application/json; charset=utf-8')
    const status = (await s.json()) as ClusterStatus
    expect(status.hosts.find((h) => h.id === c.agents[0].hostId)?.tags.note).toBe(HOSTILE)
    expect(status.shards.some((x) => x.name === HOSTILE)).toBe(true)
    for (const path of ['/', '/page.js', '/page.css']) {
      const r = await fetch(`${base}${path}`)
      expect(r.status).toBe(200)
      expect(r.headers.get('content-security-policy')).toContain("script-src 'self'")
      expect(r.headers.get('x-content-type-options')).toBe('nosniff')
      const text = await r.text()
      expect(text).not.toContain('window.pwned')
      // The page's script writes text nodes only: no HTML parsing of anything it reads.
      if (path === '/page.js') expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML/)
    }
  })

  it('stream registry changes as server-sent events from an index', async () => {
    const since = c.agents[0].stateLocal((s) => s.index)
    const ac = new AbortController()
    const r = await fetch(`${base}/events?since=${since}`, { signal: ac.signal })
    expect(r.headers.get('content-type')).toBe('text/event-stream')
    const reader = (r.body as ReadableStream<Uint8Array>).getReader()
    const sh = await c.agents[2].createShard('kv', { name: 'sse' })
    let text = ''
    await waitUntil(async () => {
      text += new TextDecoder().decode((await reader.read()).value)
      return text.includes('"op":"shard.create"')
    })
    const event = text.split('\n\n').find((e) => e.includes('"op":"shard.create"')) ?? ''
    const id = Number(/^id: (\d+)$/m.exec(event)?.[1])
    expect(id).toBeGreaterThan(since)
    const data = JSON.parse(/^data: (.*)$/m.exec(event)?.[1] ?? '{}')
    expect(data).toMatchObject({ index: id, op: 'shard.create', command: { name: 'sse' } })
    expect(data.changes[0]).toMatchObject({ kind: 'shard', id: sh.id })
    ac.abort()
    const bad = await fetch(`${base}/events?since=x`)
    expect(bad.status).toBe(400)
  })

  it('answer unknown paths and other methods plainly', async () => {
    expect((await fetch(`${base}/nope`)).status).toBe(404)
    expect((await fetch(`${base}/status.json`, { method: 'POST' })).status).toBe(405)
  })
})

describe('the HTTP endpoints over TLS', () => {
  const dirs = new TempDirs('zongzi-https-')
  const ca = createCertificateAuthority()
  const files = [0, 1, 2, 3].map((i) =>
    writeHostFiles(dirs.make(), ca, createHostCertificate(ca, ['127.0.0.1'])),
  )
  const ca0 = files[0].ca
  const keyPair = (i: number) => ({
    cert: readFileSync(files[i].cert),
    key: readFileSync(files[i].key),
  })
  let c: OpsCluster
  beforeAll(async () => {
    c = await opsCluster('https', (i) => ({ tls: files[i], httpAddress: '127.0.0.1:0' }))
  }, 60_000)
  afterAll(async () => {
    await c?.stop()
    dirs.removeAll()
  })

  /** get requests /healthz with a client certificate's files, or none. */
  const get = (files?: { cert: string; key: string }) =>
    new Promise<number | string>((resolve) => {
      const [host, port] = c.agents[0].httpAddress.split(':')
      const req = httpsRequest(
        {
          host,
          port,
          path: '/healthz',
          ca: readFileSync(ca0),
          ...(files ? { cert: readFileSync(files.cert), key: readFileSync(files.key) } : {}),
        },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.on('error', (e) => resolve(`refused: ${e.message}`))
      req.end()
    })

  it('shows the certificate reloadTls() read', async () => {
    const renewed = createHostCertificate(ca, ['127.0.0.1'])
    writeHostFiles(join(files[0].cert, '..'), ca, renewed)
    await c.agents[0].reloadTls()
    const [host, port] = c.agents[0].httpAddress.split(':')
    const shown = await new Promise<string | undefined>((resolve, reject) => {
      const s = connect({ host, port: Number(port), ca: readFileSync(ca0), ...keyPair(1) }, () => {
        resolve(s.getPeerCertificate().fingerprint256)
        s.end()
      })
      s.on('error', reject)
    })
    expect(shown).toBe(new X509Certificate(renewed.cert).fingerprint256)
  })

  it("admit a host's certificate and refuse others, as the bus does", async () => {
    expect(await get(files[1])).toBe(200)
    // Signed by the cluster CA, but no host on record has it.
    expect(await get(files[3])).toBe(403)
    expect(await get()).toMatch(/^refused|^403$/)
  })
})

describe('the event stream', () => {
  it('says reset when the index asked for is not kept, or the reader fell behind', async () => {
    const gone = new ZongziError('ERR_INVALID_ARGUMENT', 'gone')
    let behind = false
    const ctx: HttpContext = {
      metrics: async () => ({ text: '', contentType: 'text/plain' }),
      status: () => Promise.reject(new Error('not asked')),
      changes: () => {
        if (!behind) throw gone
        return (async function* () {
          yield { index: 5, op: 'shard.create', command: {}, changes: [] }
          throw gone
        })()
      },
      healthy: () => true,
      ready: async () => ({}),
      member: () => false,
    }
    const server = new OpsServer(ctx)
    try {
      const base = `http://${await server.listen('127.0.0.1:0')}`
      expect(await (await fetch(`${base}/events?since=1`)).text()).toBe(
        'event: reset\ndata: "gone"\n\n',
      )
      behind = true
      const text = await (await fetch(`${base}/events?since=1`)).text()
      expect(text).toContain('event: change\nid: 5\n')
      expect(text.endsWith('event: reset\ndata: "gone"\n\n')).toBe(true)
    } finally {
      await server.close()
    }
  })
})
