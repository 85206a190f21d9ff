// The bus service: gRPC between agents (@grpc/grpc-js). The service and its messages come
// from proto/zongzi.proto through @grpc/proto-loader at run time; their TypeScript types are
// generated from the same file at build time (ts/bus/generated/, `npm run gen:proto`).
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { join } from 'node:path'

import type { BusClient as GeneratedClient, BusDefinition } from './generated/zongzi/Bus'
import type { ProtoGrpcType } from './generated/zongzi'

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

/** ProbeResponse says who a peer is. */
export interface ProbeResponse {
  cluster: string
  hostId: string
  raftAddress: string
  apiAddress: string
  initialized: boolean
  initialHosts: string[]
}
/** JoinRequest asks a member to add the caller's host to shard 0. */
export interface JoinRequest {
  hostId: string
  raftAddress: string
  apiAddress: string
  /** The join token the cluster issued for this host. */
  token: string
  tags: Record<string, string>
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
/** JoinResponse gives the new replica's id and where shard 0's members are. */
export interface JoinResponse {
  replicaId: number
  members: Array<{ replicaId: number; raftAddress: string }>
}
/** ReplicaChange asks a member of a shard to change its membership. */
export interface ReplicaChange {
  shardId: number
  replicaId: number
  raftAddress: string
  nonVoting: boolean
}

/** ReplicaRemoval asks a member of a shard to remove a replica from its membership. */
export interface ReplicaRemoval {
  shardId: number
  replicaId: number
}

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
