// The chaos suite's state machine: registers by key, written by `put` and compare-and-set.
// Commands are JSON; a put answers 1, a cas 1 when it swapped and 0 when it found another
// value. A query is a key; the answer its value ('' when unset).
import { KvStateMachine } from '../examples/kv.mjs'

/** put sets `key` to `value`. */
export const put = (key, value) => Buffer.from(JSON.stringify({ op: 'put', key, value }))

/** cas sets `key` to `to` if it holds `from`. */
export const cas = (key, from, to) => Buffer.from(JSON.stringify({ op: 'cas', key, from, to }))

/**
 * ChaosKv is the example store (its queries, snapshots and watch) with its own commands.
 */
export class ChaosKv extends KvStateMachine {
  update(entries) {
    return entries.map((e) => {
      const c = JSON.parse(e.data.toString())
      const now = this.map.get(c.key) ?? ''
      if (c.op === 'put') {
        this.map.set(c.key, c.value)
        return { value: 1 }
      }
      if (c.op === 'cas' && now === c.from) {
        this.map.set(c.key, c.to)
        return { value: 1 }
      }
      return { value: 0 }
    })
  }
}
