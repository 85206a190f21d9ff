// The message bus: gRPC between agents (@grpc/grpc-js), messages encoded with protobufjs
// from proto/zongzi.proto, loaded at run time.
import * as grpc from '@grpc/grpc-js'
import { join } from 'node:path'
import * as protobuf from 'protobufjs'

import { ZongziError, type ErrorCode } from './errors'

const root = protobuf.loadSync(join(__dirname, '..', 'proto', 'zongzi.proto'))
const type = (name: string) => root.lookupType(`zongzi.${name}`)

/** Default largest bus message, both ways. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 << 20

export interface ProbeResponse {
  cluster: string
  hostId: string
  raftAddress: string
  apiAddress: string
  initialized: boolean
  initialHosts: string[]
}
export interface JoinRequest {
  hostId: string
  raftAddress: string
  apiAddress: string
}
export interface JoinResponse {
  replicaId: number
  members: Array<{ replicaId: number; raftAddress: string }>
}
export interface ReplicaChange {
  shardId: number
  replicaId: number
  raftAddress: string
  nonVoting: boolean
}

/** BusHandlers is what an agent serves on the bus. Each may throw a ZongziError. */
export interface BusHandlers {
  probe(): ProbeResponse
  join(req: JoinRequest): Promise<JoinResponse>
  addReplica(req: ReplicaChange): Promise<void>
  removeReplica(req: ReplicaChange): Promise<void>
  apply(shardId: number, data: Buffer, timeoutMs: number): Promise<{ value: number; data: Uint8Array }>
  commit(shardId: number, data: Buffer, timeoutMs: number): Promise<number>
  read(shardId: number, query: Buffer, stale: boolean, timeoutMs: number): Promise<Uint8Array>
  index(shardId: number, timeoutMs: number): Promise<number>
  watch(shardId: number, query: Buffer, signal: AbortSignal): AsyncIterable<Uint8Array>
  stream(shardId: number, input: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncIterable<Uint8Array>
}

type Method = { req: string; res: string; clientStream?: boolean; serverStream?: boolean }
const METHODS: Record<string, Method> = {
  Probe: { req: 'ProbeRequest', res: 'ProbeResponse' },
  Join: { req: 'JoinRequest', res: 'JoinResponse' },
  AddReplica: { req: 'AddReplicaRequest', res: 'AddReplicaResponse' },
  RemoveReplica: { req: 'AddReplicaRequest', res: 'AddReplicaResponse' },
  Apply: { req: 'ShardRequest', res: 'ApplyResponse' },
  Commit: { req: 'ShardRequest', res: 'CommitResponse' },
  Read: { req: 'ReadRequest', res: 'ReadResponse' },
  Index: { req: 'IndexRequest', res: 'IndexResponse' },
  Watch: { req: 'ReadRequest', res: 'ReadResponse', serverStream: true },
  Stream: { req: 'StreamRequest', res: 'ReadResponse', clientStream: true, serverStream: true },
}

function codec(name: string) {
  const t = type(name)
  return {
    serialize: (m: object) => Buffer.from(t.encode(t.fromObject(m)).finish()),
    deserialize: (b: Buffer) => t.toObject(t.decode(b), { longs: Number, defaults: true }) as any,
  }
}

const definition: grpc.ServiceDefinition = Object.fromEntries(
  Object.entries(METHODS).map(([name, m]) => {
    const req = codec(m.req)
    const res = codec(m.res)
    return [
      name,
      {
        path: `/zongzi.Bus/${name}`,
        requestStream: !!m.clientStream,
        responseStream: !!m.serverStream,
        requestSerialize: req.serialize,
        requestDeserialize: req.deserialize,
        responseSerialize: res.serialize,
        responseDeserialize: res.deserialize,
      },
    ]
  }),
)

const TO_STATUS: Partial<Record<ErrorCode, grpc.status>> = {
  ERR_SHARD_NOT_FOUND: grpc.status.NOT_FOUND,
  ERR_TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  ERR_INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  ERR_PAYLOAD_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  ERR_CLOSED: grpc.status.UNAVAILABLE,
  ERR_UNAVAILABLE: grpc.status.UNAVAILABLE,
  ERR_CLUSTER_MISMATCH: grpc.status.FAILED_PRECONDITION,
  ERR_NO_LEADER: grpc.status.UNAVAILABLE,
  ERR_ABORTED: grpc.status.CANCELLED,
}

function toServiceError(e: unknown): Partial<grpc.ServiceError> {
  const z = e instanceof ZongziError ? e : new ZongziError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
  const metadata = new grpc.Metadata()
  metadata.set('zongzi-code', z.code)
  return { code: TO_STATUS[z.code] ?? grpc.status.UNKNOWN, details: z.message, metadata }
}

/** fromServiceError turns a gRPC failure into a ZongziError, keeping the remote code. */
export function fromServiceError(e: grpc.ServiceError): ZongziError {
  const remote = e.metadata?.get('zongzi-code')[0]
  if (typeof remote === 'string') return new ZongziError(remote as ErrorCode, e.details || e.message, { cause: e })
  // Without the remote's own code, the call failed in transport. Only a connection that never
  // formed proves the request was not delivered; anything else leaves the outcome unknown.
  const neverSent = e.code === grpc.status.UNAVAILABLE && /no connection established|ECONNREFUSED|failed to connect/i.test(e.details ?? '')
  const code: ErrorCode =
    e.code === grpc.status.DEADLINE_EXCEEDED
      ? 'ERR_TIMEOUT'
      : e.code === grpc.status.CANCELLED
        ? 'ERR_ABORTED'
        : e.code === grpc.status.RESOURCE_EXHAUSTED
          ? 'ERR_PAYLOAD_TOO_LARGE'
          : neverSent
            ? 'ERR_UNAVAILABLE'
            : 'ERR_OUTCOME_UNKNOWN'
  return new ZongziError(code, e.details || e.message, { cause: e })
}

/** BusServer serves an agent's handlers; every request must name this cluster. */
export class BusServer {
  readonly #server: grpc.Server
  readonly #cluster: string

  constructor(cluster: string, h: BusHandlers, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.#cluster = cluster
    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
    })
    const unary =
      <Q extends { cluster: string }, R>(f: (req: Q) => Promise<R> | R) =>
      (call: grpc.ServerUnaryCall<Q, R>, cb: grpc.sendUnaryData<R>) => {
        Promise.resolve()
          .then(() => {
            this.#check(call.request.cluster)
            return f(call.request)
          })
          .then(
            (r) => cb(null, r),
            (e) => cb(toServiceError(e) as grpc.ServiceError),
          )
      }
    const change = (r: any): ReplicaChange => ({
      shardId: r.shardId,
      replicaId: r.replicaId,
      raftAddress: r.raftAddress,
      nonVoting: r.nonVoting,
    })
    this.#server.addService(definition, {
      Probe: unary(() => h.probe()),
      Join: unary((r: any) => h.join({ hostId: r.hostId, raftAddress: r.raftAddress, apiAddress: r.apiAddress })),
      AddReplica: unary(async (r: any) => (await h.addReplica(change(r)), {})),
      RemoveReplica: unary(async (r: any) => (await h.removeReplica(change(r)), {})),
      Apply: unary((r: any) => h.apply(r.shardId, r.data, r.timeoutMs)),
      Commit: unary(async (r: any) => ({ index: await h.commit(r.shardId, r.data, r.timeoutMs) })),
      Read: unary(async (r: any) => ({ data: await h.read(r.shardId, r.query, r.stale, r.timeoutMs) })),
      Index: unary(async (r: any) => ({ index: await h.index(r.shardId, r.timeoutMs) })),
      Watch: (call: grpc.ServerWritableStream<any, any>) => {
        const ac = new AbortController()
        call.on('cancelled', () => ac.abort())
        void (async () => {
          try {
            this.#check(call.request.cluster)
            for await (const data of h.watch(call.request.shardId, call.request.query, ac.signal)) {
              if (ac.signal.aborted) break
              if (!call.write({ data })) await drained(call)
            }
            call.end()
          } catch (e) {
            if (!ac.signal.aborted) call.destroy(toServiceError(e) as grpc.ServiceError)
          }
        })()
      },
      Stream: (call: grpc.ServerDuplexStream<any, any>) => {
        const ac = new AbortController()
        call.on('cancelled', () => ac.abort())
        void (async () => {
          try {
            // Reading to the end must not destroy the call: the answers still go out on it.
            const it = (call as any).iterator({ destroyOnReturn: false })[Symbol.asyncIterator]()
            const first = await it.next()
            if (first.done) return call.end()
            this.#check(first.value.cluster)
            const shardId = first.value.shardId
            async function* input(): AsyncIterable<Uint8Array> {
              if (first.value.data?.length) yield first.value.data
              for (let n = await it.next(); !n.done; n = await it.next()) yield n.value.data
            }
            for await (const data of h.stream(shardId, input(), ac.signal)) {
              if (!call.write({ data })) await drained(call)
            }
            call.end()
          } catch (e) {
            if (!ac.signal.aborted) call.destroy(toServiceError(e) as grpc.ServiceError)
          }
        })()
      },
    })
  }

  #check(cluster: string): void {
    if (cluster !== this.#cluster) {
      throw new ZongziError(
        'ERR_CLUSTER_MISMATCH',
        `request for cluster ${JSON.stringify(cluster)} reached cluster ${JSON.stringify(this.#cluster)}`,
      )
    }
  }

  /** listen binds `address` (port 0 for any) and resolves with the bound address. */
  listen(address: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) return reject(new ZongziError('ERR_INVALID_ARGUMENT', `cannot listen on ${address}: ${err.message}`))
        resolve(`${address.slice(0, address.lastIndexOf(':'))}:${port}`)
      })
    })
  }

  /** close stops accepting calls and ends the ones in flight. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => this.#server.forceShutdown(), 1000)
      this.#server.tryShutdown(() => {
        clearTimeout(t)
        resolve()
      })
    })
  }
}

/** drained waits until a stream can take more (or is gone), so a slow peer does not make us buffer without bound. */
function drained(s: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done)
      s.off('close', done)
      s.off('error', done)
      resolve()
    }
    s.once('drain', done)
    s.once('close', done)
    s.once('error', done)
  })
}

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
