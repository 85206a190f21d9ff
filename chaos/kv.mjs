// The chaos suite's state machine: registers by key, written by `put` and compare-and-set.
// Commands are JSON; a put answers 1, a cas 1 when it swapped and 0 when it found another
// value. A query is a key; the answer its value ('' when unset).

/** put sets `key` to `value`. */
export const put = (key, value) => Buffer.from(JSON.stringify({ op: 'put', key, value }))

/** cas sets `key` to `to` if it holds `from`. */
export const cas = (key, from, to) => Buffer.from(JSON.stringify({ op: 'cas', key, from, to }))

export class ChaosKv {
  map = new Map()

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

  query(q) {
    return Buffer.from(this.map.get(Buffer.from(q).toString()) ?? '')
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
