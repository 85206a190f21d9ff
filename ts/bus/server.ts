// BusServer: serves an agent's handlers to other hosts.
import * as grpc from '@grpc/grpc-js'

import { ZongziError } from '../binding/errors'
import { EMPTY } from '../binding/boundary'
import {
  BUS_VERSION,
  BUS_VERSION_HEADER,
  checkVersion,
  OLDEST_BUS_VERSION,
} from '../binding/versions'
import { toServiceError } from './codes'
import type { AddReplicaRequest__Output } from './generated/zongzi/AddReplicaRequest'
import type { AdminRequest__Output } from './generated/zongzi/AdminRequest'
import type { BusHandlers as GeneratedHandlers } from './generated/zongzi/Bus'
import type { DrainRequest__Output } from './generated/zongzi/DrainRequest'
import type { IndexRequest__Output } from './generated/zongzi/IndexRequest'
import type { JoinRequest__Output } from './generated/zongzi/JoinRequest'
import type { ReadRequest__Output } from './generated/zongzi/ReadRequest'
import type { RemoveReplicaRequest__Output } from './generated/zongzi/RemoveReplicaRequest'
import type { SessionRequest__Output } from './generated/zongzi/SessionRequest'
import type { ShardRequest__Output } from './generated/zongzi/ShardRequest'
import type { SessionRef } from '../binding/proposals'
import type { StreamRequest__Output } from './generated/zongzi/StreamRequest'
import {
  CALLER_HOST,
  type Caller,
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  definition,
  drained,
  type JoinRequest,
  type JoinResponse,
  keepalive,
  type ProbeResponse,
  type ReplicaChange,
  type ReplicaRemoval,
} from './service'

/** Bytes an Propose answer takes besides its result's data (its value and field tags). */
const RESULT_OVERHEAD = 64

/** BusHandlers is what an agent serves on the bus. Each may throw a ZongziError. */
export interface BusHandlers {
  /**
   * admit resolves when `caller` may make calls other than Probe and Join (it is a member of
   * the cluster) and rejects with ERR_UNAUTHENTICATED otherwise; the server asks it before
   * every such call.
   */
  admit(caller: Caller): Promise<void>
  probe(): ProbeResponse
  /** join admits a new host; `caller` is who calls (its certificate, over TLS). */
  join(req: JoinRequest, caller: Caller): Promise<JoinResponse>
  addReplica(req: ReplicaChange): Promise<void>
  removeReplica(req: ReplicaRemoval): Promise<void>
  propose(
    shardId: number,
    data: Buffer,
    timeoutMs: number,
    session?: SessionRef,
  ): Promise<{ value: number; data: Uint8Array }>
  session(shardId: number, clientId: number, register: boolean, timeoutMs: number): Promise<void>
  commit(shardId: number, data: Buffer, timeoutMs: number): Promise<number>
  read(
    shardId: number,
    query: Buffer,
    stale: boolean,
    timeoutMs: number,
  ): Promise<Buffer | undefined>
  index(shardId: number, timeoutMs: number): Promise<number>
  watch(shardId: number, query: Buffer, signal: AbortSignal): AsyncIterable<Uint8Array>
  stream(
    shardId: number,
    input: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): AsyncIterable<Uint8Array>
  /** status answers the cluster's status as this host sees it, as JSON (absent: UNIMPLEMENTED). */
  status?(): Promise<Uint8Array>
  /** changes yields the registry's changes after `since` (from now on if undefined), as JSON. */
  changes?(since: number | undefined, signal: AbortSignal): AsyncIterable<Uint8Array>
  /** drain drains this host, or ends its drain. */
  drain?(undrain: boolean, timeoutMs: number): Promise<void>
  /** admin performs an operator's action (JSON of an AdminAction), answering JSON. */
  admin?(action: Uint8Array, timeoutMs: number): Promise<Uint8Array>
}

/** unimplemented is the error of an operation a host does not serve. */
const unimplemented = (what: string) =>
  new ZongziError('ERR_INVALID_ARGUMENT', `this host does not serve ${what}`)

/**
 * checkRequestVersion refuses a request in a bus format this host does not serve (see
 * binding/versions.ts), before anything else is done with it; one without the header is
 * version 1.
 */
function checkRequestVersion(metadata: grpc.Metadata): void {
  const [v] = metadata.get(BUS_VERSION_HEADER)
  const version = v === undefined ? 1 : typeof v === 'string' && /^\d{1,9}$/.test(v) ? +v : v
  checkVersion('bus request', version, OLDEST_BUS_VERSION, BUS_VERSION)
}

/** callerOf says who made a call: the host it names and the certificate it showed. */
function callerOf(call: {
  metadata: grpc.Metadata
  getAuthContext(): { sslPeerCertificate?: { fingerprint256?: string } } | null
}): Caller {
  const claimed = call.metadata.get(CALLER_HOST)[0]
  const certificate = call.getAuthContext()?.sslPeerCertificate?.fingerprint256
  return {
    hostId: typeof claimed === 'string' ? claimed : '',
    ...(certificate ? { certificate } : {}),
  }
}

/** BusServer serves an agent's handlers; every request must name this cluster. */
export class BusServer {
  readonly #server: grpc.Server
  readonly #cluster: string

  /**
   * A server of `h` for `cluster`; `maxMessageBytes` bounds a message both ways (default
   * 16 MiB), `keepaliveMs` sets the keepalive pings of its connections (DEFAULT_KEEPALIVE_MS),
   * and `interceptors` see every call served (the agent's metrics count them).
   */
  constructor(
    cluster: string,
    h: BusHandlers,
    {
      maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
      keepaliveMs = DEFAULT_KEEPALIVE_MS,
      interceptors = [] as grpc.ServerInterceptor[],
    } = {},
  ) {
    this.#cluster = cluster
    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      interceptors,
      ...keepalive(keepaliveMs),
    })
    // Probe and Join are open to anyone who reaches the port; every other call only to members.
    const unary =
      <Q extends { cluster: string }, R>(
        f: (req: Q, caller: Caller) => Promise<R> | R,
        open = false,
      ) =>
      (call: grpc.ServerUnaryCall<Q, R>, cb: grpc.sendUnaryData<R>) => {
        Promise.resolve()
          .then(async () => {
            checkRequestVersion(call.metadata)
            this.#check(call.request.cluster)
            const caller = callerOf(call)
            if (!open) await h.admit(caller)
            return f(call.request, caller)
          })
          .then(
            (r) => cb(null, r),
            (e) => cb(toServiceError(e) as grpc.ServiceError),
          )
      }
    const change = (r: AddReplicaRequest__Output): ReplicaChange => ({
      shardId: r.shardId,
      replicaId: r.replicaId,
      raftAddress: r.raftAddress,
      nonVoting: r.nonVoting,
    })
    /** serveStream writes what `source` yields to a server-streaming call, after admitting. */
    const serveStream = <Q extends { cluster: string }>(
      call: grpc.ServerWritableStream<Q, { data: Uint8Array }>,
      source: (req: Q, signal: AbortSignal) => AsyncIterable<Uint8Array>,
    ) => {
      const ac = new AbortController()
      call.on('cancelled', () => ac.abort())
      void (async () => {
        try {
          checkRequestVersion(call.metadata)
          this.#check(call.request.cluster)
          await h.admit(callerOf(call))
          for await (const data of source(call.request, ac.signal)) {
            if (ac.signal.aborted) break
            if (!call.write({ data })) await drained(call)
          }
          call.end()
        } catch (e) {
          // An 'error' event is how grpc-js ends a stream with a status (destroy sends none).
          if (!ac.signal.aborted) call.emit('error', toServiceError(e))
        }
      })()
    }
    const service: GeneratedHandlers = {
      Probe: unary(() => h.probe(), true),
      Join: unary(
        (r: JoinRequest__Output, caller) =>
          h.join(
            {
              hostId: r.hostId,
              raftAddress: r.raftAddress,
              apiAddress: r.apiAddress,
              token: r.token,
              tags: { ...r.tags },
            },
            caller,
          ),
        true,
      ),
      AddReplica: unary(async (r: AddReplicaRequest__Output) => {
        await h.addReplica(change(r))
        return {}
      }),
      RemoveReplica: unary(async (r: RemoveReplicaRequest__Output) => {
        await h.removeReplica({ shardId: r.shardId, replicaId: r.replicaId })
        return {}
      }),
      Propose: unary(async (r: ShardRequest__Output) => {
        const session =
          r.clientId > 0
            ? { clientId: r.clientId, series: r.series, respondedTo: r.respondedTo }
            : undefined
        const out = await h.propose(r.shardId, r.data, r.timeoutMs, session)
        // gRPC would refuse to send it with RESOURCE_EXHAUSTED, which reads as "too large to
        // propose" (not applied); say instead that the write applied and its result is lost.
        if (out.data.length > maxMessageBytes - RESULT_OVERHEAD)
          throw new ZongziError(
            'ERR_STATE_MACHINE',
            `the write applied, but its result (${out.data.length} bytes) is larger than ` +
              `the bus carries (${maxMessageBytes} bytes a message)`,
          )
        return out
      }),
      Session: unary(async (r: SessionRequest__Output) => {
        await h.session(r.shardId, r.clientId, r.register, r.timeoutMs)
        return {}
      }),
      Commit: unary(async (r: ShardRequest__Output) => ({
        index: await h.commit(r.shardId, r.data, r.timeoutMs),
      })),
      Read: unary(async (r: ReadRequest__Output) => {
        const data = await h.read(r.shardId, r.query, r.stale, r.timeoutMs)
        return data === undefined ? { data: EMPTY, absent: true } : { data, absent: false }
      }),
      Index: unary(async (r: IndexRequest__Output) => ({
        index: await h.index(r.shardId, r.timeoutMs),
      })),
      Watch: (call) => serveStream(call, (r, signal) => h.watch(r.shardId, r.query, signal)),
      Status: unary(async () => {
        if (!h.status) throw unimplemented('Status')
        return { data: await h.status(), absent: false }
      }),
      Changes: (call) =>
        serveStream(call, (r, signal) => {
          if (!h.changes) throw unimplemented('Changes')
          return h.changes(r.latest ? undefined : r.since, signal)
        }),
      Drain: unary(async (r: DrainRequest__Output) => {
        if (!h.drain) throw unimplemented('Drain')
        await h.drain(r.undrain, r.timeoutMs)
        return {}
      }),
      Admin: unary(async (r: AdminRequest__Output) => {
        if (!h.admin) throw unimplemented('Admin')
        return { data: await h.admin(r.action, r.timeoutMs), absent: false }
      }),
      Stream: (call) => {
        const ac = new AbortController()
        call.on('cancelled', () => ac.abort())
        void (async () => {
          try {
            // Who calls is known before any message: a caller not admitted is refused before
            // the server reads (and buffers) what it sends.
            checkRequestVersion(call.metadata)
            await h.admit(callerOf(call))
            // Reading to the end must not destroy the call: the answers still go out on it.
            const it = call
              .iterator({ destroyOnReturn: false })
              [Symbol.asyncIterator]() as AsyncIterator<StreamRequest__Output>
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
            // An 'error' event is how grpc-js ends a stream with a status (destroy sends none).
            if (!ac.signal.aborted) call.emit('error', toServiceError(e))
          }
        })()
      },
    }
    this.#server.addService(definition, service)
  }

  #check(cluster: string): void {
    if (cluster !== this.#cluster) {
      const want = JSON.stringify(this.#cluster)
      // Echo only the start of what the caller sent: its name may be huge.
      const got = JSON.stringify(cluster.length > 64 ? `${cluster.slice(0, 64)}…` : cluster)
      throw new ZongziError(
        'ERR_CLUSTER_MISMATCH',
        `request for cluster ${got} reached cluster ${want}`,
      )
    }
  }

  /**
   * listen binds `address` (port 0 for any) and resolves with the bound address; without
   * credentials, it speaks plain TCP.
   */
  listen(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, credentials, (err, port) => {
        if (err)
          return reject(
            new ZongziError('ERR_INVALID_ARGUMENT', `cannot listen on ${address}: ${err.message}`),
          )
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
