// An example typed state machine: a key-value map of strings. Register it through a ShardType,
// `shardType('kv', () => new Kv())`, and its client takes and gives these values:
// propose({ op: 'set', key, value }) or propose({ op: 'delete', key }) → the key's value before
// (or undefined); read(key) → its value (or undefined); watch(key) → its value at every change.
import { EventEmitter } from 'node:events'

export class Kv {
  map = new Map()
  changes = new EventEmitter().setMaxListeners(0)

  update(entries) {
    return entries.map(({ data: c }) => {
      const previous = this.map.get(c.key)
      if (c.op === 'set') this.map.set(c.key, c.value)
      else this.map.delete(c.key)
      this.changes.emit('change', c.key)
      return previous
    })
  }

  query(key) {
    return this.map.get(key)
  }

  /** watch yields the key's value (undefined when absent) now and after every change. */
  async *watch(key, signal) {
    const queue = [this.map.get(key)]
    let wake
    const onChange = (k) => {
      if (k !== key) return
      queue.push(this.map.get(k))
      wake?.()
    }
    this.changes.on('change', onChange)
    signal?.addEventListener('abort', () => wake?.(), { once: true })
    try {
      while (!signal?.aborted) {
        while (queue.length > 0) yield queue.shift()
        if (signal?.aborted) break
        await new Promise((r) => {
          wake = r
        })
      }
    } finally {
      this.changes.off('change', onChange)
    }
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
