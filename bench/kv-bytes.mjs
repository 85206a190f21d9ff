// A byte-keyed KV state machine shared by the write benchmarks: an entry's first 8 bytes are its
// key and the whole entry its value, like the engine benchmark's Rust state machine.

/** BytesKv keys entries by their first 8 bytes; a query is a key of 8 bytes. */
export class BytesKv {
  map = new Map()
  entries = 0
  update(entries) {
    this.entries += entries.length
    return entries.map((e) => {
      this.map.set(e.data.toString('latin1', 0, 8), e.data)
      return { value: e.index }
    })
  }
  query(q) {
    return this.map.get(Buffer.from(q).toString('latin1')) ?? Buffer.alloc(0)
  }
  async saveSnapshot(out) {
    for (const [k, v] of this.map) {
      const len = Buffer.alloc(4)
      len.writeUInt32LE(v.length)
      out.write(Buffer.concat([Buffer.from(k, 'latin1'), len, v]))
    }
    out.end()
  }
  async recoverFromSnapshot(input) {
    const chunks = []
    for await (const c of input) chunks.push(c)
    const b = Buffer.concat(chunks)
    this.map.clear()
    for (let p = 0; p + 12 <= b.length; ) {
      const k = b.toString('latin1', p, p + 8)
      const n = b.readUInt32LE(p + 8)
      this.map.set(k, b.subarray(p + 12, p + 12 + n))
      p += 12 + n
    }
  }
}

/** command fills `data` (at least 8 bytes give a key) for client `c`'s `n`th write. */
export function command(data, c, n) {
  if (data.length >= 4) data.writeUInt32LE(c, 0)
  if (data.length >= 8) data.writeUInt32LE(n & 0xffff, 4)
  return data
}
