import { afterAll, describe, expect, it } from 'vitest'

import {
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
  ZongziError,
} from '../ts/index'
import { BusClient } from '../ts/bus/client'
import { busCredentials } from '../ts/bus/credentials'
import { BusServer, type BusHandlers } from '../ts/bus/server'
import { codeOf, TempDirs } from './helpers'

// The bus's TLS channels send a server name (SNI) only for DNS names, and still check the
// server's certificate against the address dialled, an IP address included.

const dirs = new TempDirs('zongzi-bus-tls-')
const ca = createCertificateAuthority()
const files = (names: string[]) => writeHostFiles(dirs.make(), ca, createHostCertificate(ca, names))

const handlers = {
  probe: () => {
    throw new ZongziError('ERR_CLUSTER_MISMATCH', 'answered')
  },
} as unknown as BusHandlers

const server = new BusServer('c', handlers)
const clients: BusClient[] = []
afterAll(async () => {
  for (const c of clients) c.close()
  await server.close()
  dirs.removeAll()
})

describe('a TLS channel of the bus', () => {
  it('checks the certificate against the IP address dialled, and the name dialled', async () => {
    // The server's certificate names localhost only.
    const address = await server.listen('127.0.0.1:0', busCredentials(files(['localhost'])).server)
    const port = address.split(':')[1]
    const client = new BusClient('c', {
      credentials: busCredentials(files(['127.0.0.1'])).channel(),
      hostId: () => 'h',
    })
    clients.push(client)
    // At 127.0.0.1 the certificate does not fit: refused in the handshake, before any request.
    const e = await client.probe(`127.0.0.1:${port}`, { timeoutMs: 3000 }).catch((x) => x)
    expect(e.code).toBe('ERR_UNAVAILABLE')
    // At localhost it does: the call reaches the server's handler.
    expect(await codeOf(client.probe(`localhost:${port}`, { timeoutMs: 3000 }))).toBe(
      'ERR_CLUSTER_MISMATCH',
    )
  })
})
