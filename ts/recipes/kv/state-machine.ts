// The KV recipe's state machine: keys with versions, conditional writes (a version, a value
// or several keys' versions at once), prefix ranges in pages, and keys that expire on the
// time the leader puts in the log.
import type { Readable, Writable } from 'node:stream'

import type { ApplyResult, Entry, StateMachine } from '../../binding/state-machine'
import { LogTime } from '../clock'
import { readLines, writeLines } from '../lines'
import { json } from '../shard'
import { SortedKeys } from '../sorted-keys'
import {
  decodeCommand,
  decodeQuery,
  encodeOutcome,
  type KvCommand,
  type KvOutcome,
  type KvPage,
  type KvRecord,
} from './codec'

/** The largest page a range answers, whatever it asks for. */
export const MAX_PAGE = 1000

/**
 * KvStateMachine is a replicated map of string keys to string values. Every key has a
 * version, the log index of the entry that last wrote it. Writes may be conditional:
 * `ifVersion` (0: the key must be absent), `cas` on the value, or a transaction over several
 * keys' versions. A key written with `ttlMs` is deleted by the first tick of the leader's
 * clock at or after its deadline (see LeaderClock). Register it with
 * `agent.register('zongzi/kv', () => new KvStateMachine())` and use it through a KvClient.
 */
export class KvStateMachine implements StateMachine {
  readonly #records = new Map<string, KvRecord>()
  readonly #keys = new SortedKeys()
  /** Keys with an expiry, and when. */
  readonly #expiring = new Map<string, number>()
  readonly #time = new LogTime()

  /** update applies writes and ticks; a refused condition is an answer, not an error. */
  update(entries: Entry[]): ApplyResult[] {
    return entries.map((e) => {
      let c: KvCommand
      try {
        c = decodeCommand(e.data)
      } catch {
        return { value: -1, data: json({ error: 'not a KV command' }) }
      }
      if (c.op === 'tick') {
        this.#expire(this.#time.advance(c.now))
        return { value: 1 }
      }
      return encodeOutcome(this.#write(c, e.index))
    })
  }

  #write(c: Exclude<KvCommand, { op: 'tick' }>, index: number): KvOutcome {
    switch (c.op) {
      case 'set': {
        const refused = this.#check(c.key, c.ifVersion)
        if (refused) return refused
        this.#set(c.key, c.value, index, c.ttlMs)
        return { ok: true, version: index }
      }
      case 'delete': {
        const refused = this.#check(c.key, c.ifVersion)
        if (refused) return refused
        this.#delete(c.key)
        return { ok: true, version: index }
      }
      case 'cas': {
        const current = this.#records.get(c.key)
        if ((current?.value ?? null) !== c.expect) return { ok: false, current, key: c.key }
        this.#set(c.key, c.value, index, c.ttlMs)
        return { ok: true, version: index }
      }
      case 'txn': {
        for (const k of c.compare) {
          const refused = this.#check(k.key, k.version)
          if (refused) return refused
        }
        for (const w of c.set) this.#set(w.key, w.value, index, w.ttlMs)
        for (const k of c.delete) this.#delete(k)
        return { ok: true, version: index }
      }
      default:
        return { ok: false, current: undefined, key: '' }
    }
  }

  /** #check refuses a write whose version condition fails, with the record it found. */
  #check(key: string, version: number | undefined): KvOutcome | undefined {
    if (version === undefined) return undefined
    const current = this.#records.get(key)
    return (current?.version ?? 0) === version ? undefined : { ok: false, current, key }
  }

  #set(key: string, value: string, version: number, ttlMs?: number): void {
    const r: KvRecord = { key, value, version }
    if (ttlMs !== undefined && ttlMs > 0) {
      r.expiresAt = this.#time.now + ttlMs
      this.#expiring.set(key, r.expiresAt)
    } else this.#expiring.delete(key)
    this.#records.set(key, r)
    this.#keys.add(key)
  }

  #delete(key: string): void {
    this.#records.delete(key)
    this.#keys.delete(key)
    this.#expiring.delete(key)
  }

  #expire(now: number): void {
    for (const [key, at] of this.#expiring) if (at <= now) this.#delete(key)
  }

  /** query answers `get` with a record (absent: undefined) and `range` with a page. */
  query(q: Buffer): Buffer | undefined {
    const query = decodeQuery(q)
    if (query.q === 'get') {
      const r = this.#records.get(query.key)
      return r && json(r)
    }
    const limit = Math.max(1, Math.min(MAX_PAGE, query.limit))
    const page: KvPage = { records: [] }
    for (const key of this.#keys.range(query.prefix, query.after)) {
      if (page.records.length === limit) {
        page.next = page.records[limit - 1].key
        break
      }
      page.records.push(this.#records.get(key) as KvRecord)
    }
    return json(page)
  }

  /**
   * saveSnapshot writes the log time, then one record a line, in key order. Records are
   * never changed in place, so the list taken at the start stays the state of that moment.
   */
  async saveSnapshot(out: Writable): Promise<void> {
    const rows: unknown[] = [{ time: this.#time.now }]
    for (const k of this.#keys.range('')) rows.push(this.#records.get(k))
    await writeLines(out, rows)
  }

  /** recoverFromSnapshot replaces the whole state with a snapshot's. */
  async recoverFromSnapshot(input: Readable): Promise<void> {
    this.#records.clear()
    this.#expiring.clear()
    this.#keys.clear()
    this.#time.now = 0
    let first = true
    for await (const row of readLines<KvRecord & { time: number }>(input)) {
      if (first) {
        this.#time.now = row.time
        first = false
        continue
      }
      this.#records.set(row.key, row)
      this.#keys.add(row.key)
      if (row.expiresAt !== undefined) this.#expiring.set(row.key, row.expiresAt)
    }
  }
}
