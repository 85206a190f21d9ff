// An example state machine: a key-value map with change feeds. It needs no de-duplication of
// its own: a ShardClient's writes go in a client session, so a retried write applies once.
import { EventEmitter } from 'node:events'

/** set builds a command: {op: 'set', key, value} as JSON. */
export const set = (key, value) => Buffer.from(JSON.stringify({ op: 'set', key, value }))

export class KvStateMachine {
  map = new Map()
  changes = new EventEmitter().setMaxListeners(0)

  update(entries) {
    return entries.map((e) => {
      let cmd
      try {
        cmd = JSON.parse(e.data.toString())
      } catch {
        return { value: 0, data: Buffer.from('not JSON') }
      }
      const prev = this.map.get(cmd.key)
      this.map.set(cmd.key, cmd.value)
      this.changes.emit('change', cmd.key, cmd.value)
      return { value: this.map.size, data: Buffer.from(prev ?? '') }
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
