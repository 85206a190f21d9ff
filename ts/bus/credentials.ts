// The bus's credentials: mutual TLS with the cluster CA when the agent has certificate files,
// plain TCP otherwise (loopback, or a network the agent was told to trust).
import * as grpc from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import type { ConnectionOptions } from 'node:tls'

import { invalid } from '../binding/errors'
import type { TlsFiles } from '../binding/host'

type CaListener = grpc.experimental.CaCertificateUpdateListener
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener

/** Pems are the PEM contents of a host's TLS files. */
interface Pems {
  ca: Buffer
  cert: Buffer
  key: Buffer
}

/**
 * PemProvider hands the server the CA and this host's certificate, and hands it new ones when
 * they are reloaded: connections made after a reload see them. A new listener hears of the
 * current ones just after it is added (grpc-js registers its watcher after adding it).
 */
class PemProvider implements grpc.experimental.CertificateProvider {
  readonly #ca = new Set<CaListener>()
  readonly #identity = new Set<IdentityListener>()
  #pems: Pems

  constructor(pems: Pems) {
    this.#pems = pems
  }

  set(pems: Pems): void {
    this.#pems = pems
    for (const l of this.#ca) l({ caCertificate: pems.ca })
    for (const l of this.#identity) l({ certificate: pems.cert, privateKey: pems.key })
  }

  addCaCertificateListener(l: CaListener): void {
    this.#ca.add(l)
    queueMicrotask(() => this.#ca.has(l) && l({ caCertificate: this.#pems.ca }))
  }
  removeCaCertificateListener(l: CaListener): void {
    this.#ca.delete(l)
  }
  addIdentityCertificateListener(l: IdentityListener): void {
    this.#identity.add(l)
    const now = () => ({ certificate: this.#pems.cert, privateKey: this.#pems.key })
    queueMicrotask(() => this.#identity.has(l) && l(now()))
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.#identity.delete(l)
  }
}

/**
 * Staged are TLS files read and checked but not in use yet: `certificate` is the fingerprint
 * of the certificate in them, and `use` switches to them.
 */
export interface Staged {
  readonly certificate: string | undefined
  use(): void
}

/**
 * BusCredentials are what the bus's server and its client channels present. Over TLS,
 * `stage` reads the files again, and its `use` switches to them: the server shows the new
 * certificate to connections made after it, and `channel` returns credentials with it (a
 * BusClient made to use them must drop its open channels). `reload` is both at once.
 */
export interface BusCredentials {
  readonly server: grpc.ServerCredentials
  channel(): grpc.ChannelCredentials
  /** SHA-256 fingerprint of this host's certificate; undefined without TLS. */
  certificate(): string | undefined
  stage(): Staged
  reload(): void
}

/** fingerprintOf returns the SHA-256 fingerprint of a PEM certificate, as Node prints it. */
export function fingerprintOf(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256
}

/**
 * busCredentials reads the PEM files of mutual TLS: the server requires a client certificate
 * signed by the cluster CA, and channels present this host's certificate and check the
 * server's against the CA and the address dialled. Without files, both sides are plain.
 */
export function busCredentials(tls: TlsFiles | undefined): BusCredentials {
  if (!tls) {
    return {
      server: grpc.ServerCredentials.createInsecure(),
      channel: () => grpc.credentials.createInsecure(),
      certificate: () => undefined,
      stage: () => ({ certificate: undefined, use: () => {} }),
      reload: () => {},
    }
  }
  let pems = readPems(tls)
  const provider = new PemProvider(pems)
  const stage = (): Staged => {
    const next = readPems(tls)
    return {
      certificate: fingerprintOf(next.cert),
      use: () => {
        pems = next
        provider.set(next)
      },
    }
  }
  return {
    server: grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true),
    channel: () => new NamesOnly(grpc.credentials.createSsl(pems.ca, pems.key, pems.cert)),
    certificate: () => fingerprintOf(pems.cert),
    stage,
    reload: () => stage().use(),
  }
}

/** readPems reads and checks a host's TLS files; a file that is not PEM fails here. */
function readPems(tls: TlsFiles): Pems {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path)
    } catch (e) {
      throw invalid(`cannot read the ${what} file ${path}: ${(e as Error).message}`)
    }
  }
  const pems = {
    ca: read('CA certificate', tls.ca),
    cert: read('certificate', tls.cert),
    key: read('private key', tls.key),
  }
  try {
    fingerprintOf(pems.cert)
    fingerprintOf(pems.ca)
  } catch (e) {
    throw invalid(`the TLS files are not PEM certificates: ${(e as Error).message}`)
  }
  return pems
}

/**
 * NamesOnly are channel credentials that send a TLS server name (SNI) only for a DNS name:
 * grpc-js sets the dialled host as the server name, an IP address too, which RFC 6066 does
 * not allow and for which Node prints a deprecation warning (DEP0123) on every process's first
 * connection. The certificate is still checked against the address dialled (Node checks the
 * connection's host when no server name is set). It relies on the connector's
 * `connectionOptions` (grpc-js 1.14); without them, it changes nothing.
 */
class NamesOnly extends grpc.ChannelCredentials {
  constructor(readonly inner: grpc.ChannelCredentials) {
    super()
  }

  _isSecure(): boolean {
    return this.inner._isSecure()
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return other instanceof NamesOnly && this.inner._equals(other.inner)
  }

  _createSecureConnector(
    ...args: Parameters<grpc.ChannelCredentials['_createSecureConnector']>
  ): ReturnType<grpc.ChannelCredentials['_createSecureConnector']> {
    const connector = this.inner._createSecureConnector(...args)
    const o = (connector as { connectionOptions?: ConnectionOptions }).connectionOptions
    if (o && typeof o.servername === 'string' && isIP(o.servername) !== 0) o.servername = undefined
    return connector
  }
}
