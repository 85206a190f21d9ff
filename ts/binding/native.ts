// Loads the native binding: the local build (native/) first, then the platform package.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type {
  createCertificateAuthority as createCertificateAuthorityFn,
  createHostCertificate as createHostCertificateFn,
  NativeHost as NativeHostClass,
} from '../../native/index'

export type {
  HostOptions as NativeHostOptions,
  MembershipInfo,
  ReplicaStatus,
  StoredReplica,
} from '../../native/index'

const TRIPLES: Record<string, string> = {
  'linux-x64': 'linux-x64-gnu',
}

/** Native is what the addon exports. */
interface Native {
  NativeHost: typeof NativeHostClass
  createCertificateAuthority: typeof createCertificateAuthorityFn
  createHostCertificate: typeof createHostCertificateFn
}

function load(): Native {
  const key = `${process.platform}-${process.arch}`
  const triple = TRIPLES[key]
  if (!triple) throw new Error(`zongzi has no prebuilt binary for ${key}`)
  const req = createRequire(__filename)
  const errors: string[] = []
  for (const candidate of [
    join(__dirname, '..', '..', 'native', `zongzi.${triple}.node`),
    `zongzi-${triple}`,
  ]) {
    try {
      return req(candidate)
    } catch (e) {
      errors.push(`${candidate}: ${(e as Error).message}`)
    }
  }
  throw new Error(`cannot load the zongzi native binding:\n${errors.join('\n')}`)
}

const native = load()
/** NativeHost is the binding's host class. */
export const NativeHost = native.NativeHost
/** nativeCertificates makes a cluster CA and host certificates (rcgen in the addon). */
export const nativeCertificates = {
  authority: native.createCertificateAuthority,
  host: native.createHostCertificate,
}
/** NativeHost instance type. */
export type NativeHost = NativeHostClass
