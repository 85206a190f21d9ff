// The bus service: gRPC between agents (@grpc/grpc-js), messages encoded with protobufjs
// from proto/zongzi.proto, loaded at run time.
import type * as grpc from '@grpc/grpc-js'
import { join } from 'node:path'
import * as protobuf from 'protobufjs'

const root = protobuf.loadSync(join(__dirname, '..', '..', 'proto', 'zongzi.proto'))
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

/** definition is the Bus service of proto/zongzi.proto. */
export const definition: grpc.ServiceDefinition = Object.fromEntries(
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

/** drained waits until a stream can take more (or is gone), so a slow peer does not make us buffer without bound. */
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
