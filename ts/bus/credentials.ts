// The bus's credentials: mutual TLS with the cluster CA when the agent has certificate files,
// plain TCP otherwise (loopback, or a network the agent was told to trust).
import * as grpc from '@grpc/grpc-js'
import { readFileSync } from 'node:fs'

import { invalid } from '../binding/errors'
import type { TlsFiles } from '../binding/host'

/** BusCredentials are what the bus's server and its client channels present. */
export interface BusCredentials {
  server: grpc.ServerCredentials
  channel: grpc.ChannelCredentials
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
      channel: grpc.credentials.createInsecure(),
    }
  }
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path)
    } catch (e) {
      throw invalid(`cannot read the ${what} file ${path}: ${(e as Error).message}`)
    }
  }
  const ca = read('CA certificate', tls.ca)
  const cert = read('certificate', tls.cert)
  const key = read('private key', tls.key)
  return {
    server: grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true),
    channel: grpc.credentials.createSsl(ca, key, cert),
  }
}
