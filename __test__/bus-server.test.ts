import * as grpc from '@grpc/grpc-js'
import { afterAll, describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/index'
import { fromServiceError } from '../ts/bus/codes'
import { BusServer, type BusHandlers } from '../ts/bus/server'
import { makeClient } from '../ts/bus/service'

// The bus server on loopback, with handlers that admit nobody: what a refused caller gets,
// and when.

const refuse = async () => {
  throw new ZongziError('ERR_UNAUTHENTICATED', 'not a member')
}
const never = () => {
  throw new Error('a refused caller reached a handler')
}
const handlers = {
  admit: refuse,
  stream: never,
  watch: never,
} as unknown as BusHandlers

const server = new BusServer('c', handlers)
afterAll(() => server.close())

describe('a Stream call', () => {
  it('is refused before the caller sends anything, when the caller is not admitted', async () => {
    const address = await server.listen('127.0.0.1:0')
    const raw = makeClient(address, grpc.credentials.createInsecure(), {})
    try {
      const call = raw.Stream(new grpc.Metadata(), { deadline: Date.now() + 5000 })
      const code = await new Promise<string>((resolve) => {
        call.on('data', () => resolve('answered'))
        call.on('error', (e: grpc.ServiceError) => resolve(fromServiceError(e).code))
        call.on('end', () => resolve('ended'))
      })
      expect(code).toBe('ERR_UNAUTHENTICATED')
    } finally {
      raw.close()
    }
  })
})
