// The bus service: gRPC between agents (@grpc/grpc-js). The service and its messages come
// from proto/zongzi.proto through @grpc/proto-loader at run time; their TypeScript types are
// generated from the same file at build time (ts/bus/generated/, `npm run gen:proto`).
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { join } from 'node:path'

import type { BusClient as GeneratedClient, BusDefinition } from './generated/zongzi/Bus'
import type { ProtoGrpcType } from './generated/zongzi'
import type { AddReplicaRequest__Output } from './generated/zongzi/AddReplicaRequest'
import type { JoinRequest__Output } from './generated/zongzi/JoinRequest'
import type { JoinResponse__Output } from './generated/zongzi/JoinResponse'
import type { ProbeResponse__Output } from './generated/zongzi/ProbeResponse'
import type { RemoveReplicaRequest__Output } from './generated/zongzi/RemoveReplicaRequest'

const packageDefinition = protoLoader.loadSync(
  join(__dirname, '..', '..', 'proto', 'zongzi.proto'),
  {
    // uint64 ids and indexes stay below 2^53, so plain numbers carry them.
    longs: Number,
    defaults: true,
  },
)
const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType

/** definition is the Bus service of proto/zongzi.proto. */
export const definition: BusDefinition = proto.zongzi.Bus.service

/** RawClient is the generated client of the Bus service. */
export type RawClient = GeneratedClient

/** makeClient connects a generated Bus client to `address`. */
export function makeClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions,
): RawClient {
  return new proto.zongzi.Bus(address, credentials, options)
}

/** Default largest bus message, both ways. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 << 20

/**
 * DEFAULT_KEEPALIVE_MS is how often both ends of a bus connection ping it while it carries a
 * call, and how long they wait for the answer: a host cut off without a word (a partition, a
 * machine that died) fails the calls on the connection within about twice this, instead of
 * leaving a watch or stream hanging.
 */
export const DEFAULT_KEEPALIVE_MS = 10_000

/** keepalive is the gRPC options of keepalive pings every `ms`, both ends alike. */
export function keepalive(ms: number): grpc.ChannelOptions {
  return { 'grpc.keepalive_time_ms': ms, 'grpc.keepalive_timeout_ms': ms }
}

/** CALLER_HOST is the metadata key in which a host names itself on the bus. */
export const CALLER_HOST = 'zongzi-host'

/**
 * Caller is who made a bus call: the host id it claims and, over TLS, the SHA-256
 * fingerprint of the certificate it connected with.
 */
export interface Caller {
  hostId: string
  certificate?: string
}
// The messages the bus's handlers take and give: the generated types of proto/zongzi.proto,
// as received (every field present), less the `cluster` field that the bus itself fills and
// checks.

/** ProbeResponse says who a peer is. */
export type ProbeResponse = ProbeResponse__Output
/** JoinRequest asks a member to add the caller's host to shard 0, showing its join token. */
export type JoinRequest = Omit<JoinRequest__Output, 'cluster'>
/** JoinResponse gives the new replica's id and where shard 0's members are. */
export type JoinResponse = JoinResponse__Output
/** ReplicaChange asks a member of a shard to change its membership. */
export type ReplicaChange = Omit<AddReplicaRequest__Output, 'cluster'>
/** ReplicaRemoval asks a member of a shard to remove a replica from its membership. */
export type ReplicaRemoval = Omit<RemoveReplicaRequest__Output, 'cluster'>

/**
 * drained waits until a stream can take more (or is gone), so a slow peer does not make us buffer
 * without bound.
 */
export function drained(s: NodeJS.EventEmitter): Promise<void> {
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
