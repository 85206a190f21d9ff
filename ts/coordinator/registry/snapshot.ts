// The registry's snapshots: JSON Lines, a header with the format version, the counters and row
// counts, then one row per line (hosts, shards, replicas, used join tokens). Written in chunks and
// read line by line, so that a registry of any size is never one string.
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'

import type { HostRecord, ReplicaRecord, ShardRecord } from './records'
import { RegistryState, type UsedToken } from './state'
import { checkRegistryVersion } from './versions'

/** SNAPSHOT_CHUNK is about how many characters a snapshot hands its stream at a time. */
export const SNAPSHOT_CHUNK = 64 * 1024

/** SnapshotHeader is the first line of a registry snapshot: counters and row counts. */
interface SnapshotHeader {
  index: number
  nextShardId: number
  nextReplicaId: number
  hosts: number
  shards: number
  replicas: number
  /** Absent in snapshots of clusters made without a join key. */
  joinKey?: string
  tokens?: number
  /** Commands name their proposers (Access.named); absent in snapshots made before. */
  named?: boolean
  /**
   * The registry format of the snapshot, which is the one the cluster writes (Access.version);
   * absent in format 1.
   */
  version?: number
}

/** failure is why `out` can take no more, if it can't. */
const failure = (out: Writable): Error | undefined =>
  out.errored ?? (out.destroyed ? new Error('the snapshot stream was closed') : undefined)

/** drained resolves once `out` asks for more, and rejects once it fails or closes. */
function drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      out.off('drain', done)
      out.off('close', done)
      out.off('error', done)
      const e = failure(out)
      if (e) reject(e)
      else resolve()
    }
    out.on('drain', done)
    out.on('close', done)
    out.on('error', done)
  })
}

/**
 * writeSnapshot writes state `s` to `out` in chunks of about SNAPSHOT_CHUNK characters,
 * waiting for `out` to drain when it asks, and ends it. It rejects once `out` fails.
 */
export async function writeSnapshot(s: RegistryState, out: Writable): Promise<void> {
  // A failure shows in out.errored; without a listener it would be thrown at large.
  const ignore = () => {}
  out.on('error', ignore)
  try {
    let chunk = ''
    const flush = async () => {
      const e = failure(out)
      if (e) throw e
      const ok = chunk === '' || out.write(chunk)
      chunk = ''
      if (!ok) await drained(out)
    }
    const write = async (o: unknown) => {
      chunk += `${JSON.stringify(o)}\n`
      if (chunk.length >= SNAPSHOT_CHUNK) await flush()
    }
    await write({
      kind: 'header',
      ...(s.version > 1 ? { version: s.version } : {}),
      index: s.index,
      nextShardId: s.nextShardId,
      nextReplicaId: s.nextReplicaId,
      hosts: s.hosts.size,
      shards: s.shards.size,
      replicas: s.replicas.size,
      joinKey: s.access.joinKey,
      tokens: s.access.used.size,
      ...(s.access.named ? { named: true } : {}),
    })
    for (const h of s.hosts.values()) await write({ kind: 'host', ...h })
    for (const sh of s.shards.values()) await write({ kind: 'shard', ...sh })
    for (const r of s.replicas.values()) await write({ kind: 'replica', ...r })
    for (const [id, u] of s.access.used) await write({ kind: 'token', id, ...u })
    await flush()
    out.end()
  } finally {
    out.off('error', ignore)
  }
}

/**
 * readSnapshot reads a snapshot line by line and builds the state it holds (its tables and
 * indexes once, at the end). It rejects when the snapshot is incomplete.
 */
export async function readSnapshot(input: Readable): Promise<RegistryState> {
  const hosts = new Map<string, HostRecord>()
  const shards = new Map<number, ShardRecord>()
  const replicas = new Map<number, ReplicaRecord>()
  const used = new Map<string, UsedToken>()
  let header: SnapshotHeader | undefined
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (!line) continue
    const { kind, ...row } = JSON.parse(line)
    if (kind === 'header') {
      // Refused before any row is read: a later format may mean other things by them.
      checkRegistryVersion('registry snapshot', row.version ?? 1)
      header = row
    } else if (kind === 'host') hosts.set(row.id, row)
    else if (kind === 'shard') shards.set(row.id, row)
    else if (kind === 'replica') replicas.set(row.id, row)
    else if (kind === 'token') {
      const { id, hostId, expires, raftAddress, certificate } = row
      used.set(id, {
        hostId,
        expires,
        ...(raftAddress === undefined ? {} : { raftAddress }),
        ...(certificate === undefined ? {} : { certificate }),
      })
    }
  }
  if (
    !header ||
    hosts.size !== header.hosts ||
    shards.size !== header.shards ||
    replicas.size !== header.replicas ||
    used.size !== (header.tokens ?? 0)
  ) {
    throw new Error('registry snapshot is incomplete')
  }
  return new RegistryState(
    header.index,
    hosts,
    shards,
    replicas,
    header.nextShardId,
    header.nextReplicaId,
    {
      joinKey: header.joinKey ?? '',
      used,
      ...(header.named ? { named: true } : {}),
      ...((header.version ?? 1) > 1 ? { version: header.version } : {}),
    },
  )
}
