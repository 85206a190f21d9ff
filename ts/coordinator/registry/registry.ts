// The registry: the state machine of shard 0. Every host runs a replica of it, so every host
// has the whole topology locally. Commands are JSON; invalid ones get an error result and
// change nothing.
import { EventEmitter } from 'node:events'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'

import type { ApplyResult, Entry, StateMachine } from '../../binding/state-machine'
import type { HostRecord, Outcome, ReplicaRecord, ShardRecord } from './records'
import { commandOf } from './changes'
import { runCommand } from './commands'
import { ChangeHistory } from './history'
import { type Batch, Invalid, Writer } from './writer'
import { RegistryState, type UsedToken } from './state'

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
}

/**
 * Registry is shard 0's state machine. It emits `change` with the new state after every
 * batch it applies.
 */
export class Registry extends EventEmitter implements StateMachine {
  #state = RegistryState.empty()
  /** The changes this replica applied lately, for `agent.changes()`. */
  readonly history = new ChangeHistory()

  /** state is the current immutable snapshot. */
  get state(): RegistryState {
    return this.#state
  }

  update(entries: Entry[]): ApplyResult[] {
    // The tables copied by this batch's commands: changed in place by its later commands,
    // never again once the batch's state is out (see BatchMap).
    const batch: Batch = new Set()
    const results = entries.map((e) => this.#apply(e.index, e.data, batch))
    this.#announce()
    return results
  }

  /** #announce tells listeners about the new state; a listener's error never fails the registry. */
  #announce(): void {
    const s = this.#state
    queueMicrotask(() => {
      try {
        this.emit('change', s)
      } catch {
        // A listener's failure is the listener's; the registry carries on.
      }
    })
  }

  query(q: Uint8Array): Uint8Array {
    return Buffer.from(
      JSON.stringify({ index: this.#state.index, query: Buffer.from(q).toString() }),
    )
  }

  #apply(index: number, data: Buffer, batch: Batch): ApplyResult {
    let out: Outcome
    const s = this.#state
    const w = new Writer(s, index, batch, true)
    try {
      let cmd: unknown
      try {
        cmd = JSON.parse(data.toString())
      } catch {
        throw new Invalid('command is not JSON')
      }
      out = runCommand(w, cmd)
      this.#state = w.finish()
      if (w.changes.length > 0 || w.access !== s.access) {
        const c = cmd as Record<string, unknown>
        const by = typeof c.by === 'string' ? { by: c.by } : {}
        const command = commandOf(c)
        this.history.push({ index, op: String(c.op), ...by, command, changes: w.changes })
      }
    } catch (e) {
      w.abandon()
      if (!(e instanceof Invalid)) throw e
      out = e.code ? { ok: false, error: e.message, code: e.code } : { ok: false, error: e.message }
      this.#state = new RegistryState(
        index,
        s.hosts,
        s.shards,
        s.replicas,
        s.nextShardId,
        s.nextReplicaId,
        s.access,
      )
    }
    return { value: out.ok ? 1 : 0, data: Buffer.from(JSON.stringify(out)) }
  }

  /**
   * saveSnapshot writes JSON Lines: a header with the counters and row counts, then one
   * row per line.
   */
  async saveSnapshot(out: Writable): Promise<void> {
    const s = this.#state
    const write = (o: unknown) =>
      new Promise<void>((resolve, reject) => {
        const ok = out.write(`${JSON.stringify(o)}\n`, (e) => (e ? reject(e) : undefined))
        if (ok) resolve()
        else out.once('drain', resolve)
      })
    await write({
      kind: 'header',
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
    out.end()
  }

  /** recoverFromSnapshot replaces the whole state with the snapshot's. */
  async recoverFromSnapshot(input: Readable): Promise<void> {
    const hosts = new Map<string, HostRecord>()
    const shards = new Map<number, ShardRecord>()
    const replicas = new Map<number, ReplicaRecord>()
    const used = new Map<string, UsedToken>()
    let header: SnapshotHeader | undefined
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (!line) continue
      const { kind, ...row } = JSON.parse(line)
      if (kind === 'header') header = row
      else if (kind === 'host') hosts.set(row.id, row)
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
    this.#state = new RegistryState(
      header.index,
      hosts,
      shards,
      replicas,
      header.nextShardId,
      header.nextReplicaId,
      { joinKey: header.joinKey ?? '', used, ...(header.named ? { named: true } : {}) },
    )
    this.history.reset(header.index)
    this.#announce()
  }
}
