// BusClient: calls other hosts' bus servers.
import * as grpc from '@grpc/grpc-js'

import { ZongziError } from '../binding/errors'
import type { SessionRef } from '../binding/proposals'
import { BUS_VERSION, BUS_VERSION_HEADER } from '../binding/versions'
import { fromServiceError } from './codes'
import type { CommitResponse__Output } from './generated/zongzi/CommitResponse'
import type { IndexResponse__Output } from './generated/zongzi/IndexResponse'
import type { ReadResponse__Output } from './generated/zongzi/ReadResponse'
import {
  CALLER_HOST,
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  keepalive,
  makeClient,
  type RawClient,
  drained,
  type JoinRequest,
  type JoinResponse,
  type ProbeResponse,
  type ReplicaChange,
  type ReplicaRemoval,
} from './service'

/** CallOptions bound a bus call. */
export interface BusCallOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

/** Start begins one unary call on a generated client. */
type Start<R> = (
  c: RawClient,
  meta: grpc.Metadata,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: R) => void,
) => grpc.ClientUnaryCall

/** BusClientOptions configure a BusClient. */
export interface BusClientOptions {
  /** Largest message, both ways (default 16 MiB). */
  maxMessageBytes?: number
  /** What channels present (default: plain TCP). */
  credentials?: grpc.ChannelCredentials
  /** The host id this client names itself by (see CALLER_HOST); none for a non-member. */
  hostId?: () => string
  /** Keepalive ping interval and timeout in ms (default DEFAULT_KEEPALIVE_MS). */
  keepaliveMs?: number
}

/** BusClient calls other agents; one connection per address, reused. */
export class BusClient {
  readonly #cluster: string
  readonly #clients = new Map<string, RawClient>()
  readonly #options: grpc.ChannelOptions
  readonly #hostId: () => string
  #credentials: grpc.ChannelCredentials

  constructor(cluster: string, o: BusClientOptions = {}) {
    const maxMessageBytes = o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.#cluster = cluster
    this.#credentials = o.credentials ?? grpc.credentials.createInsecure()
    this.#hostId = o.hostId ?? (() => '')
    this.#options = {
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      ...keepalive(o.keepaliveMs ?? DEFAULT_KEEPALIVE_MS),
    }
  }

  /**
   * useCredentials makes later calls connect with `credentials` (a reloaded certificate):
   * open channels close once their calls end, and new ones replace them.
   */
  useCredentials(credentials: grpc.ChannelCredentials): void {
    this.#credentials = credentials
    this.close()
  }

  /** #metadata names this host to the callee, and the format version of the request. */
  #metadata(): grpc.Metadata {
    const m = new grpc.Metadata()
    m.set(BUS_VERSION_HEADER, String(BUS_VERSION))
    const id = this.#hostId()
    if (id) m.set(CALLER_HOST, id)
    return m
  }

  #client(address: string): RawClient {
    let c = this.#clients.get(address)
    if (!c) {
      c = makeClient(address, this.#credentials, this.#options)
      this.#clients.set(address, c)
    }
    return c
  }

  #unary<R>(address: string, o: BusCallOptions, start: Start<R>): Promise<R> {
    const timeoutMs = o.timeoutMs ?? 5000
    return new Promise<R>((resolve, reject) => {
      if (o.signal?.aborted) return reject(new ZongziError('ERR_ABORTED', 'aborted'))
      const deadline = { deadline: Date.now() + timeoutMs + 500 }
      const call = start(this.#client(address), this.#metadata(), deadline, (err, res) => {
        o.signal?.removeEventListener('abort', onAbort)
        if (err) reject(fromServiceError(err))
        else resolve(res as R)
      })
      const onAbort = () => call.cancel()
      o.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** probe asks a peer who it is. */
  probe(address: string, o: BusCallOptions = {}): Promise<ProbeResponse> {
    const cluster = this.#cluster
    return this.#unary(address, o, (c, m, opts, cb) => c.Probe({ cluster }, m, opts, cb))
  }

  /** join asks a member to add a host to shard 0. */
  join(address: string, req: JoinRequest, o: BusCallOptions = {}): Promise<JoinResponse> {
    const msg = { cluster: this.#cluster, ...req }
    return this.#unary(address, o, (c, m, opts, cb) => c.Join(msg, m, opts, cb))
  }

  /** addReplica asks a member of a shard to add a replica to its membership. */
  async addReplica(address: string, req: ReplicaChange, o: BusCallOptions = {}): Promise<void> {
    const msg = { cluster: this.#cluster, ...req }
    await this.#unary(address, o, (c, m, opts, cb) => c.AddReplica(msg, m, opts, cb))
  }

  /** removeReplica asks a member of a shard to remove a replica from its membership. */
  async removeReplica(address: string, req: ReplicaRemoval, o: BusCallOptions = {}): Promise<void> {
    const msg = { cluster: this.#cluster, ...req }
    await this.#unary(address, o, (c, m, opts, cb) => c.RemoveReplica(msg, m, opts, cb))
  }

  /**
   * propose proposes on a remote replica and resolves with the state machine's result; with
   * `session`, as that series of a client session.
   */
  propose(
    address: string,
    shardId: number,
    data: Uint8Array,
    o: BusCallOptions & { session?: SessionRef } = {},
  ): Promise<{ value: number; data: Buffer }> {
    const s = o.session
    const msg = {
      cluster: this.#cluster,
      shardId,
      data,
      timeoutMs: o.timeoutMs ?? 5000,
      ...(s ? { clientId: s.clientId, series: s.series, respondedTo: s.respondedTo } : {}),
    }
    return this.#unary(address, o, (c, m, opts, cb) => c.Propose(msg, m, opts, cb))
  }

  /** session registers (`register` true) or ends a client session with a remote shard. */
  async session(
    address: string,
    shardId: number,
    clientId: number,
    register: boolean,
    o: BusCallOptions = {},
  ): Promise<void> {
    const timeoutMs = o.timeoutMs ?? 5000
    const msg = { cluster: this.#cluster, shardId, clientId, register, timeoutMs }
    await this.#unary(address, o, (c, m, opts, cb) => c.Session(msg, m, opts, cb))
  }

  /** commit proposes on a remote replica and resolves with the index once committed. */
  async commit(
    address: string,
    shardId: number,
    data: Uint8Array,
    o: BusCallOptions = {},
  ): Promise<number> {
    const msg = { cluster: this.#cluster, shardId, data, timeoutMs: o.timeoutMs ?? 5000 }
    const r = await this.#unary<CommitResponse__Output>(address, o, (c, m, opts, cb) =>
      c.Commit(msg, m, opts, cb),
    )
    return r.index
  }

  /**
   * read queries a remote replica, linearizably unless `stale`; undefined means the state
   * machine answered "absent".
   */
  async read(
    address: string,
    shardId: number,
    query: Uint8Array,
    stale: boolean,
    o: BusCallOptions = {},
  ): Promise<Buffer | undefined> {
    const msg = { cluster: this.#cluster, shardId, query, stale, timeoutMs: o.timeoutMs ?? 5000 }
    const r = await this.#unary<ReadResponse__Output>(address, o, (c, m, opts, cb) =>
      c.Read(msg, m, opts, cb),
    )
    return r.absent ? undefined : r.data
  }

  /** index resolves once the remote replica applied everything committed before the call. */
  async index(address: string, shardId: number, o: BusCallOptions = {}): Promise<number> {
    const msg = { cluster: this.#cluster, shardId, timeoutMs: o.timeoutMs ?? 5000 }
    const r = await this.#unary<IndexResponse__Output>(address, o, (c, m, opts, cb) =>
      c.Index(msg, m, opts, cb),
    )
    return r.index
  }

  /** watch yields what the remote state machine's watch yields, until aborted or ended. */
  async *watch(
    address: string,
    shardId: number,
    query: Uint8Array,
    signal?: AbortSignal,
  ): AsyncIterable<Buffer> {
    const req = { cluster: this.#cluster, shardId, query }
    const call = this.#client(address).Watch(req, this.#metadata())
    yield* relay(call, signal)
  }

  /** stream sends `input` to the remote state machine's stream and yields its output. */
  async *stream(
    address: string,
    shardId: number,
    input: AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): AsyncIterable<Buffer> {
    const call = this.#client(address).Stream(this.#metadata())
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
    yield* relay(call, signal)
  }

  /** status asks a host for the cluster's status as it sees it (JSON, a ClusterStatus). */
  async status(address: string, o: BusCallOptions = {}): Promise<Buffer> {
    const cluster = this.#cluster
    const r = await this.#unary<ReadResponse__Output>(address, o, (c, m, opts, cb) =>
      c.Status({ cluster }, m, opts, cb),
    )
    return r.data
  }

  /**
   * changes yields a host's registry changes after `since` (from now on when undefined), each
   * as JSON (a RegistryChange), until aborted or ended.
   */
  async *changes(
    address: string,
    since: number | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<Buffer> {
    const req = { cluster: this.#cluster, since: since ?? 0, latest: since === undefined }
    yield* relay(this.#client(address).Changes(req, this.#metadata()), signal)
  }

  /** drain asks a host to drain itself (or, with `undrain`, to end its drain). */
  async drain(address: string, undrain: boolean, o: BusCallOptions = {}): Promise<void> {
    const timeoutMs = o.timeoutMs ?? 120_000
    const msg = { cluster: this.#cluster, undrain, timeoutMs }
    await this.#unary(address, { ...o, timeoutMs }, (c, m, opts, cb) => c.Drain(msg, m, opts, cb))
  }

  /**
   * admin asks a host to perform an operator's action (JSON of an AdminAction) and resolves
   * with its result (JSON).
   */
  async admin(address: string, action: unknown, o: BusCallOptions = {}): Promise<Buffer> {
    const timeoutMs = o.timeoutMs ?? 5000
    const msg = { cluster: this.#cluster, action: Buffer.from(JSON.stringify(action)), timeoutMs }
    const r = await this.#unary<ReadResponse__Output>(
      address,
      { ...o, timeoutMs },
      (c, m, opts, cb) => c.Admin(msg, m, opts, cb),
    )
    return r.data
  }

  close(): void {
    for (const c of this.#clients.values()) c.close()
    this.#clients.clear()
  }
}

/**
 * relay yields the data of a streaming call's responses until it ends, `signal` aborts it or
 * the consumer stops; the call is cancelled then, whichever came first.
 */
async function* relay(
  call: AsyncIterable<unknown> & { cancel(): void },
  signal?: AbortSignal,
): AsyncIterable<Buffer> {
  const onAbort = () => call.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const m of call as AsyncIterable<ReadResponse__Output>) yield m.data
  } catch (e) {
    if (!signal?.aborted) throw fromServiceError(e as grpc.ServiceError)
  } finally {
    signal?.removeEventListener('abort', onAbort)
    call.cancel() // the consumer may stop early: end the call (and any input with it)
  }
}
