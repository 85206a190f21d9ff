// The lock recipe's state machine: named locks held under a lease, each grant numbered with a
// fencing token, and leases that end on the time the leader puts in the log.
import type { Readable, Writable } from 'node:stream'

import type { ApplyResult, Entry, StateMachine } from '../../binding/state-machine'
import { LogTime } from '../clock'
import { readLines, writeLines } from '../lines'
import { json } from '../shard'
import { decodeCommand, decodeQuery, encodeAnswer, type Holder, type LockCommand } from './codec'

/**
 * LockStateMachine keeps named locks. `acquire` grants a free lock (or one whose lease has
 * ended) under a lease of `leaseMs`, with a fencing token (the entry's index); the holder
 * renews the lease and releases the lock with its token. A lease ends at the first tick of
 * the leader's clock at or after its deadline (see LeaderClock). Acquiring a lock one
 * already holds renews it, with the same token.
 */
export class LockStateMachine implements StateMachine {
  readonly #locks = new Map<string, Holder>()
  readonly #time = new LogTime()

  /** update applies acquire, renew, release and tick; a denial is an answer, not an error. */
  update(entries: Entry[]): ApplyResult[] {
    return entries.map((e) => {
      let c: LockCommand
      try {
        c = decodeCommand(e.data)
      } catch {
        return { value: -1, data: json({ error: 'not a lock command' }) }
      }
      return this.#apply(c, e.index)
    })
  }

  #apply(c: LockCommand, index: number): ApplyResult {
    const now = this.#time.now
    if (c.op === 'tick') {
      const t = this.#time.advance(c.now)
      for (const [name, h] of this.#locks) if (h.expiresAt <= t) this.#locks.delete(name)
      return { value: 1 }
    }
    const held = this.#live(c.name)
    const mine = held?.owner === c.owner
    switch (c.op) {
      case 'acquire': {
        if (held && !mine) return encodeAnswer(false, held)
        const h = { name: c.name, owner: c.owner, token: held?.token ?? index, expiresAt: 0 }
        h.expiresAt = now + c.leaseMs
        this.#locks.set(c.name, h)
        return encodeAnswer(true, h)
      }
      case 'renew': {
        if (!held || !mine || held.token !== c.token) return encodeAnswer(false, held)
        const h = { ...held, expiresAt: now + c.leaseMs }
        this.#locks.set(c.name, h)
        return encodeAnswer(true, h)
      }
      case 'release': {
        if (!held || !mine || held.token !== c.token) return encodeAnswer(false, held)
        this.#locks.delete(c.name)
        return encodeAnswer(true, undefined)
      }
      default:
        return { value: -1 }
    }
  }

  /** #live is a lock's holder unless its lease has ended on the log's time. */
  #live(name: string): Holder | undefined {
    const h = this.#locks.get(name)
    return h && h.expiresAt > this.#time.now ? h : undefined
  }

  /** query answers who holds a lock, or undefined if nobody does. */
  query(q: Buffer): Buffer | undefined {
    const h = this.#live(decodeQuery(q).name)
    return h && json(h)
  }

  /** saveSnapshot writes the log time, then one holder a line. */
  async saveSnapshot(out: Writable): Promise<void> {
    await writeLines(out, [{ time: this.#time.now }, ...this.#locks.values()])
  }

  /** recoverFromSnapshot replaces the whole state with a snapshot's. */
  async recoverFromSnapshot(input: Readable): Promise<void> {
    this.#locks.clear()
    this.#time.now = 0
    let first = true
    for await (const row of readLines<Holder & { time: number }>(input)) {
      if (first) this.#time.now = row.time
      else this.#locks.set(row.name, row)
      first = false
    }
  }
}
