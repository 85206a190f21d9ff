// Machines: the TypeScript half of crates/node/src/machines.rs, the engine-side stand-ins for
// state machines written in JavaScript. The engine's apply thread calls a stand-in, which hands
// the call here; the replica's state machine runs it, and the outcome goes back to the engine
// with `complete` or `completeUpdate`.
import { createReadStream, createWriteStream } from 'node:fs'
import { finished } from 'node:stream/promises'

import { message, type NativeCall, Outcomes, unpack, type UpdateItem } from './boundary'
import type { NativeHost } from './native'
import { call, checkId, type StartOptions } from './host-options'
import { isPersistent, type StateMachine, type StateMachineFactory } from './state-machine'

/** Running is a replica's state machine and the start (incarnation) it serves. */
interface Running {
  sm: StateMachine
  incarnation: number
}

/**
 * Machines keeps the state machines of a host's running replicas, one per shard, each with
 * the start (incarnation) it serves, and runs the engine's calls on them.
 */
export class Machines {
  readonly #native: NativeHost
  readonly #running = new Map<number, Running>()
  /** The last incarnation given to a start of a replica. */
  #incarnations = 0

  constructor(native: NativeHost) {
    this.#native = native
  }

  /**
   * start makes the state machine of a replica's start (an incarnation of its own), opens it
   * when it is persistent, and starts the replica in the engine with it; when the engine
   * refuses, the state machine is forgotten and closed.
   */
  async start(
    shardId: number,
    replicaId: number,
    start: StartOptions,
    factory: StateMachineFactory,
  ): Promise<void> {
    const sm = factory(shardId, replicaId)
    const applied = isPersistent(sm) ? await sm.open() : 0
    checkId(applied, 'open() result')
    const { incarnation } = this.add(shardId, sm)
    try {
      const voters = start.mode === 'bootstrap' ? start.voters : undefined
      await call(() =>
        this.#native.startReplica(shardId, replicaId, start.mode, voters, applied, incarnation),
      )
    } catch (e) {
      this.remove(shardId, incarnation)
      await sm.close?.()
      throw e
    }
  }

  /** has tells whether a shard has a running state machine here. */
  has(shardId: number): boolean {
    return this.#running.has(shardId)
  }

  /** get returns the running state machine of a shard, and the start it serves. */
  get(shardId: number): Running | undefined {
    return this.#running.get(shardId)
  }

  /** add keeps a new start's state machine; it returns the start's incarnation. */
  add(shardId: number, sm: StateMachine): Running {
    const running = { sm, incarnation: ++this.#incarnations }
    this.#running.set(shardId, running)
    return running
  }

  /**
   * remove forgets a shard's state machine if it still serves the start `running` (or
   * `incarnation`): it returns whether it did. Closing it is the caller's.
   */
  remove(shardId: number, incarnation: number | undefined): Running | undefined {
    const running = this.#running.get(shardId)
    if (!running || running.incarnation !== incarnation) return undefined
    this.#running.delete(shardId)
    return running
  }

  /** clear forgets every state machine and returns them (to be closed). */
  clear(): Running[] {
    const all = [...this.#running.values()]
    this.#running.clear()
    return all
  }

  /** #machine is the state machine of a shard's replica, if it runs as `incarnation`. */
  #machine(shardId: number, incarnation: number): StateMachine | undefined {
    const running = this.#running.get(shardId)
    return running?.incarnation === incarnation ? running.sm : undefined
  }

  /**
   * dispatch runs a state machine call from the engine. It never throws: every outcome goes
   * back to the engine, and a failure stops only the replica concerned.
   */
  dispatch(c: NativeCall): void {
    if (c.kind === 'update') {
      this.#update(c.token, unpack(c))
      return
    }
    const fail = (e: unknown) => this.#native.complete(c.token, message(e))
    try {
      const sm = this.#machine(c.shardId as number, c.incarnation as number)
      if (!sm) return void fail(new Error(`no state machine for shard ${c.shardId}`))
      if (c.kind === 'save') {
        const ws = createWriteStream(c.path as string)
        sm.saveSnapshot(ws)
          .then(async () => {
            if (!ws.writableEnded) ws.end()
            await finished(ws)
            this.#native.complete(c.token)
          })
          .catch((e) => {
            ws.destroy()
            fail(e)
          })
      } else {
        sm.recoverFromSnapshot(createReadStream(c.path as string), c.index as number)
          .then(() => this.#native.complete(c.token))
          .catch(fail)
      }
    } catch (e) {
      fail(e)
    }
  }

  /**
   * #update applies one batch of many shards. Synchronous state machines are applied and
   * answered within this call; an asynchronous one makes the rest wait for it, so that
   * every shard still sees its entries in order.
   */
  #update(token: number, shards: UpdateItem[]): void {
    const out = new Outcomes()
    const failed = new Set<number>()
    const fail = (shardId: number, e: unknown) => {
      failed.add(shardId)
      out.fail(message(e))
    }
    const record = (shardId: number, n: number, r: unknown) => {
      try {
        out.ok(r, n)
      } catch (e) {
        fail(shardId, e)
      }
    }
    const step = (from: number): void => {
      for (let i = from; i < shards.length; i++) {
        const { shardId, incarnation, entries } = shards[i]
        const sm = this.#machine(shardId, incarnation)
        if (!sm || failed.has(shardId)) {
          out.fail(
            sm ? 'an earlier batch of this shard failed' : `no state machine for shard ${shardId}`,
          )
          continue
        }
        let r: unknown
        try {
          r = sm.update(entries)
        } catch (e) {
          fail(shardId, e)
          continue
        }
        if (r instanceof Promise) {
          const next = i + 1
          r.then(
            (v) => {
              record(shardId, entries.length, v)
              step(next)
            },
            (e) => {
              fail(shardId, e)
              step(next)
            },
          )
          return
        }
        record(shardId, entries.length, r)
      }
      try {
        const p = out.pack()
        this.#native.completeUpdate(token, p.counts, p.errors, p.values, p.lengths, p.data)
      } catch {
        // The host closed meanwhile; the engine already gave up on this call.
      }
    }
    step(0)
  }
}
