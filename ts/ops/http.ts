// OpsServer: an agent's HTTP endpoints (node:http; node:https with the bus's mutual TLS):
// /metrics, /healthz, /readyz, /status.json, /events (the change stream as server-sent
// events) and the status page. Over TLS a caller must show a certificate of the cluster CA
// that the registry has for a host, as on the bus.
import {
  createServer as plain,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as secure } from 'node:https'
import { readFileSync } from 'node:fs'
import type { TLSSocket } from 'node:tls'

import { invalid } from '../binding/errors'
import type { TlsFiles } from '../binding/host'
import type { RegistryChange } from '../coordinator/registry/changes'
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from './status-page'
import type { ClusterStatus } from './status'

/** Check is one readiness check: passed, or why not. */
export type Check = true | string

/** HttpContext is what the HTTP endpoints read of their agent. */
export interface HttpContext {
  /** The Prometheus text of the agent's series, and its content type. */
  metrics(): Promise<{ text: string; contentType: string }>
  status(): Promise<ClusterStatus>
  changes(o: { since?: number; signal?: AbortSignal }): AsyncIterable<RegistryChange>
  /** healthy tells whether the process and its engine are alive (why not, if not). */
  healthy(): Check
  /** ready runs the readiness checks: registered, caught up, shard 0 reachable. */
  ready(): Promise<Record<string, Check>>
  /** member tells whether a certificate fingerprint is that of a host on record. */
  member(fingerprint: string): boolean
}

/** HEARTBEAT_MS is how often an idle event stream sends a comment, to keep proxies open. */
const HEARTBEAT_MS = 15_000

/** Headers of every answer: no sniffing, no framing, scripts and styles from this host only. */
const SAFE = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'",
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
}

/** pems reads a host's TLS files as node:tls takes them. */
const pems = (tls: TlsFiles) => ({
  ca: readFileSync(tls.ca),
  cert: readFileSync(tls.cert),
  key: readFileSync(tls.key),
})

/** OpsServer serves an agent's HTTP endpoints on one address. */
export class OpsServer {
  readonly #ctx: HttpContext
  readonly #server: Server
  readonly #streams = new Set<ServerResponse>()
  readonly #abort = new AbortController()
  readonly #tls: TlsFiles | undefined

  /** An HTTP server of `ctx`; with `tls`, HTTPS that asks every caller for its certificate. */
  constructor(ctx: HttpContext, tls?: TlsFiles) {
    this.#ctx = ctx
    this.#tls = tls
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((e) => {
        if (!res.headersSent) this.#send(res, 500, 'text/plain', `${String(e)}\n`)
        else res.destroy()
      })
    }
    this.#server = tls ? secure({ ...pems(tls), requestCert: true }, handle) : plain(handle)
  }

  /** reloadTls reads the TLS files again: connections made from now on see them. */
  reloadTls(): void {
    if (this.#tls) (this.#server as ReturnType<typeof secure>).setSecureContext(pems(this.#tls))
  }

  /** listen binds `address` (`host:port`, port 0 for any) and resolves with the bound one. */
  listen(address: string): Promise<string> {
    const i = address.lastIndexOf(':')
    const host = address.slice(0, i).replace(/^\[|\]$/g, '')
    const port = Number(address.slice(i + 1))
    if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
      throw invalid(`httpAddress must be host:port, got ${JSON.stringify(address)}`)
    return new Promise((resolve, reject) => {
      this.#server.once('error', (e) =>
        reject(invalid(`cannot listen on ${address} (HTTP): ${e.message}`)),
      )
      this.#server.listen(port, host, () => {
        const a = this.#server.address()
        const bound = typeof a === 'object' && a ? a.port : port
        resolve(`${address.slice(0, i)}:${bound}`)
      })
    })
  }

  /** close ends the event streams and stops the server. */
  close(): Promise<void> {
    this.#abort.abort()
    for (const s of this.#streams) s.end()
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket as Partial<TLSSocket>
    if (socket.getPeerCertificate) {
      const cert = socket.getPeerCertificate()
      if (!socket.authorized || !cert?.fingerprint256 || !this.#ctx.member(cert.fingerprint256))
        return this.#send(res, 403, 'text/plain', 'a certificate of a cluster host is required\n')
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.#send(res, 405, 'text/plain', 'GET only\n')
    const url = new URL(req.url ?? '/', 'http://localhost')
    switch (url.pathname) {
      case '/':
        return this.#send(res, 200, 'text/html; charset=utf-8', PAGE_HTML)
      case '/page.js':
        return this.#send(res, 200, 'text/javascript; charset=utf-8', PAGE_JS)
      case '/page.css':
        return this.#send(res, 200, 'text/css; charset=utf-8', PAGE_CSS)
      case '/metrics': {
        const m = await this.#ctx.metrics()
        return this.#send(res, 200, m.contentType, m.text)
      }
      case '/healthz': {
        const h = this.#ctx.healthy()
        return this.#send(res, h === true ? 200 : 503, 'text/plain', `${h === true ? 'ok' : h}\n`)
      }
      case '/readyz': {
        const checks = await this.#ctx.ready()
        const ok = Object.values(checks).every((c) => c === true)
        return this.#json(res, ok ? 200 : 503, { ready: ok, checks })
      }
      case '/status.json':
        return this.#json(res, 200, await this.#ctx.status())
      case '/events':
        return this.#events(req, res, url)
      default:
        return this.#send(res, 404, 'text/plain', 'not found\n')
    }
  }

  /**
   * #events streams registry changes as server-sent events (`event: change`, `id:` its
   * index), after `since` or the browser's Last-Event-ID; `event: reset` says that index is
   * no longer kept (read /status.json again and follow from its index).
   */
  async #events(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const from = req.headers['last-event-id'] ?? url.searchParams.get('since') ?? undefined
    const since = from === undefined || from === '' ? undefined : Number(from)
    if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0))
      return this.#send(res, 400, 'text/plain', 'since must be a registry index\n')
    const ac = new AbortController()
    const signal = AbortSignal.any([ac.signal, this.#abort.signal])
    let changes: AsyncIterable<RegistryChange>
    try {
      changes = this.#ctx.changes({ since, signal })
    } catch (e) {
      res.writeHead(200, { ...SAFE, 'content-type': 'text/event-stream' })
      res.end(`event: reset\ndata: ${JSON.stringify(String((e as Error).message))}\n\n`)
      return
    }
    res.writeHead(200, { ...SAFE, 'content-type': 'text/event-stream' })
    res.write(': changes\n\n')
    this.#streams.add(res)
    const beat = setInterval(() => res.write(': beat\n\n'), HEARTBEAT_MS)
    beat.unref()
    res.on('close', () => ac.abort())
    try {
      for await (const c of changes) {
        if (!res.write(`event: change\nid: ${c.index}\ndata: ${JSON.stringify(c)}\n\n`))
          await new Promise((r) => res.once('drain', r).once('close', r))
      }
    } catch (e) {
      if (!res.writableEnded)
        res.write(`event: reset\ndata: ${JSON.stringify(String((e as Error).message))}\n\n`)
    } finally {
      clearInterval(beat)
      this.#streams.delete(res)
      res.end()
    }
  }

  #json(res: ServerResponse, code: number, body: unknown): void {
    this.#send(res, code, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`)
  }

  #send(res: ServerResponse, code: number, type: string, body: string): void {
    res.writeHead(code, { ...SAFE, 'content-type': type })
    res.end(res.req.method === 'HEAD' ? undefined : body)
  }
}
