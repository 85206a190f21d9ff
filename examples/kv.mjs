// An example state machine: a key-value map with change feeds, plus a helper for
// de-duplicating retried commands (Zongzi has no Raft client sessions; commands carry an id
// chosen by the client and the state machine remembers the ids it applied).
import { EventEmitter } from 'node:events'

/** encode builds a command: {id, op: 'set', key, value} as JSON. */
export const set = (key, value, id) => Buffer.from(JSON.stringify({ op: 'set', key, value, id }))

/** Dedup remembers the last `size` command ids, so a retried command applies once. */
export class Dedup {
  constructor(size = 100_000) {
    this.size = size
    this.seen = new Map()
  }
  /** check returns the earlier result of `id`, or undefined if it is new. */
  check(id) {
    return id === undefined ? undefined : this.seen.get(id)
  }
  remember(id, result) {
    if (id === undefined) return
    this.seen.set(id, result)
    if (this.seen.size > this.size) this.seen.delete(this.seen.keys().next().value)
  }
}

export class KvStateMachine {
  map = new Map()
  dedup = new Dedup()
  changes = new EventEmitter().setMaxListeners(0)

  update(entries) {
    return entries.map((e) => {
      let cmd
      try {
        cmd = JSON.parse(e.data.toString())
      } catch {
        return { value: 0, data: Buffer.from('not JSON') }
      }
      const done = this.dedup.check(cmd.id)
      if (done) return done
      const prev = this.map.get(cmd.key)
      this.map.set(cmd.key, cmd.value)
      this.changes.emit('change', cmd.key, cmd.value)
      const result = { value: this.map.size, data: Buffer.from(prev ?? '') }
      this.dedup.remember(cmd.id, result)
      return result
    })
  }

  query(q) {
    return Buffer.from(this.map.get(Buffer.from(q).toString()) ?? '')
  }

  /** watch yields the key's value now and after every change, until aborted. */
  async *watch(q, signal) {
    const key = Buffer.from(q).toString()
    const queue = [Buffer.from(this.map.get(key) ?? '')]
    let wake
    const onChange = (k, v) => {
      if (k !== key) return
      queue.push(Buffer.from(v))
      wake?.()
    }
    this.changes.on('change', onChange)
    signal?.addEventListener('abort', () => wake?.(), { once: true })
    try {
      while (!signal?.aborted) {
        while (queue.length) yield queue.shift()
        await new Promise((r) => {
          wake = r
        })
      }
    } finally {
      this.changes.off('change', onChange)
    }
  }

  /** stream answers each key it receives with its current value. */
  async *stream(input) {
    for await (const q of input) yield this.query(q)
  }

  async saveSnapshot(out) {
    out.end(JSON.stringify([...this.map]))
  }

  async recoverFromSnapshot(input) {
    let s = ''
    for await (const c of input) s += c
    this.map = new Map(s ? JSON.parse(s) : [])
  }
}
