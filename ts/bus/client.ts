// BusClient: calls other hosts' bus servers.
import * as grpc from '@grpc/grpc-js'

import { ZongziError } from '../binding/errors'
import { fromServiceError } from './codes'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  definition,
  drained,
  type JoinRequest,
  type JoinResponse,
  type ProbeResponse,
  type ReplicaChange,
} from './service'

const Client = grpc.makeGenericClientConstructor(definition, 'Bus')

/** CallOptions bound a bus call. */
export interface BusCallOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

/** BusClient calls other agents; one connection per address, reused. */
export class BusClient {
  readonly #cluster: string
  readonly #clients = new Map<string, grpc.Client>()
  readonly #options: grpc.ChannelOptions

  constructor(cluster: string, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.#cluster = cluster
    this.#options = {
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
    }
  }

  #client(address: string): any {
    let c = this.#clients.get(address)
    if (!c) {
      c = new Client(address, grpc.credentials.createInsecure(), this.#options)
      this.#clients.set(address, c)
    }
    return c
  }

  #unary<R>(address: string, method: string, req: object, o: BusCallOptions = {}): Promise<R> {
    const timeoutMs = o.timeoutMs ?? 5000
    return new Promise<R>((resolve, reject) => {
      if (o.signal?.aborted) return reject(new ZongziError('ERR_ABORTED', 'aborted'))
      const call = this.#client(address)[method](
        { cluster: this.#cluster, ...req },
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs + 500 },
        (err: grpc.ServiceError | null, res: R) => {
          o.signal?.removeEventListener('abort', onAbort)
          if (err) reject(fromServiceError(err))
          else resolve(res)
        },
      )
      const onAbort = () => call.cancel()
      o.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  probe(address: string, o?: BusCallOptions): Promise<ProbeResponse> {
    return this.#unary(address, 'Probe', {}, o)
  }
  join(address: string, req: JoinRequest, o?: BusCallOptions): Promise<JoinResponse> {
    return this.#unary(address, 'Join', req, o)
  }
  async addReplica(address: string, req: ReplicaChange, o?: BusCallOptions): Promise<void> {
    await this.#unary(address, 'AddReplica', req, o)
  }
  async removeReplica(address: string, req: ReplicaChange, o?: BusCallOptions): Promise<void> {
    await this.#unary(address, 'RemoveReplica', req, o)
  }
  apply(address: string, shardId: number, data: Uint8Array, o: BusCallOptions = {}): Promise<{ value: number; data: Buffer }> {
    return this.#unary(address, 'Apply', { shardId, data, timeoutMs: o.timeoutMs ?? 5000 }, o)
  }
  async commit(address: string, shardId: number, data: Uint8Array, o: BusCallOptions = {}): Promise<number> {
    return (await this.#unary<{ index: number }>(address, 'Commit', { shardId, data, timeoutMs: o.timeoutMs ?? 5000 }, o)).index
  }
  async read(address: string, shardId: number, query: Uint8Array, stale: boolean, o: BusCallOptions = {}): Promise<Buffer> {
    return (await this.#unary<{ data: Buffer }>(address, 'Read', { shardId, query, stale, timeoutMs: o.timeoutMs ?? 5000 }, o)).data
  }
  async index(address: string, shardId: number, o: BusCallOptions = {}): Promise<number> {
    return (await this.#unary<{ index: number }>(address, 'Index', { shardId, timeoutMs: o.timeoutMs ?? 5000 }, o)).index
  }

  /** watch yields what the remote state machine's watch yields, until aborted or ended. */
  async *watch(address: string, shardId: number, query: Uint8Array, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const call: grpc.ClientReadableStream<{ data: Buffer }> = this.#client(address).Watch({ cluster: this.#cluster, shardId, query })
    const onAbort = () => call.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      for await (const m of call) yield m.data
    } catch (e) {
      if (!signal?.aborted) throw fromServiceError(e as grpc.ServiceError)
    } finally {
      signal?.removeEventListener('abort', onAbort)
      call.cancel()
    }
  }

  /** stream sends `input` to the remote state machine's stream and yields its output. */
  async *stream(address: string, shardId: number, input: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const call: grpc.ClientDuplexStream<object, { data: Buffer }> = this.#client(address).Stream()
    const onAbort = () => call.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    call.write({ cluster: this.#cluster, shardId })
    void (async () => {
      try {
        for await (const data of input) {
          if (!call.write({ data })) await drained(call)
        }
      } finally {
        call.end()
      }
    })().catch(() => call.cancel())
    try {
      for await (const m of call) yield m.data
    } catch (e) {
      if (!signal?.aborted) throw fromServiceError(e as grpc.ServiceError)
    } finally {
      signal?.removeEventListener('abort', onAbort)
      call.cancel() // the consumer may stop early: end the call, and the input with it
    }
  }

  close(): void {
    for (const c of this.#clients.values()) c.close()
    this.#clients.clear()
  }
}
