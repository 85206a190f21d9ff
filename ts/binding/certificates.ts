// Certificates for a first cluster: a CA, and host certificates it signs, for the mutual TLS
// of the Raft transport. Keys are made in the addon (rcgen); nothing here parses ASN.1.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { fromNative } from './errors'
import { nativeCertificates } from './native'
import type { TlsFiles } from './host'

/** Pem is a certificate and its private key, PEM encoded. */
export interface Pem {
  cert: string
  key: string
}

/** createCertificateAuthority makes a new cluster CA. Keep its key secret and offline. */
export function createCertificateAuthority(): Pem {
  try {
    return nativeCertificates.authority()
  } catch (e) {
    throw fromNative(e)
  }
}

/**
 * createHostCertificate signs a certificate for a host: `names` are the IP addresses and DNS
 * names peers reach it by. `validDays` bounds it from today (by default it does not expire).
 */
export function createHostCertificate(
  ca: Pem,
  names: string[],
  options: { validDays?: number } = {},
): Pem {
  try {
    return nativeCertificates.host(ca, names, options.validDays)
  } catch (e) {
    throw fromNative(e)
  }
}

/**
 * writeHostFiles writes what one host needs into `dir` (created if missing, files readable
 * by their owner only): the CA's certificate, the host's certificate and key. It returns
 * the paths, ready for `HostOptions.tls`.
 */
export function writeHostFiles(dir: string, ca: Pem, host: Pem): TlsFiles {
  mkdirSync(dir, { recursive: true })
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'host.pem'), key: join(dir, 'host.key') }
  writeFileSync(files.ca, ca.cert)
  writeFileSync(files.cert, host.cert)
  writeFileSync(files.key, host.key, { mode: 0o600 })
  return files
}
