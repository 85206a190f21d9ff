// @ts-check
// The chaos suite's history: every operation the clients made, with when it was called and
// when (if ever) it returned, and what can be read from it besides linearizability.

/**
 * Invocation is an operation as a client called it: its id, key, kind and call time, and
 * what the kind needs (a value to write, the values a cas swaps).
 * @typedef {Record<string, unknown> & { id: string, key: string, op: string, call: number }} Invocation
 */
/**
 * Completion is how an operation returned: failed (it did nothing), or answered at `return`
 * with a value read or whether a cas swapped; `code` names a failure whose outcome is unknown.
 * @typedef {Record<string, unknown> & { id: string }} Completion
 */
/**
 * Op is an operation of the history: its invocation and, once known, its completion.
 * @typedef {Record<string, any> & { id: string, key: string, op: string, call: number }} Op
 */

export class History {
  /**
   * Operations by id, in the order they were invoked.
   * @type {Map<string, Op>}
   */
  ops = new Map()

  /** @param {Invocation} ev */
  invoke(ev) {
    this.ops.set(ev.id, { ...ev })
  }

  /** @param {Completion} c */
  complete(c) {
    const op = this.ops.get(c.id)
    if (!op) return
    if (c.failed) op.failed = true
    else {
      op.return = c.return
      if ('value' in c) op.value = c.value
      if ('ok' in c) op.ok = c.ok
    }
    if (c.code) op.code = c.code
  }

  /**
   * counts: ops invoked; ok (answered); fail (certainly did nothing); info (outcome unknown),
   * of which `unknown_seen` a client was told so, by code in `unknown_codes` (the rest were
   * cut short by a kill).
   */
  counts() {
    let ok = 0
    let fail = 0
    let info = 0
    let seen = 0
    /** @type {Record<string, number>} */
    const codes = {}
    for (const op of this.ops.values()) {
      if (op.failed) fail++
      else if (op.return === undefined) {
        info++
        if (op.code) {
          seen++
          codes[op.code] = (codes[op.code] ?? 0) + 1
        }
      } else ok++
    }
    return { ops: this.ops.size, ok, fail, info, unknown_seen: seen, unknown_codes: codes }
  }

  /**
   * lines are the checker's input: every operation that may have had an effect (a read cut
   * short had none, and saw nothing).
   */
  /** @returns {string[]} */
  lines() {
    const out = []
    for (const op of this.ops.values()) {
      if (op.failed || (op.op === 'read' && op.return === undefined)) continue
      out.push(
        JSON.stringify({
          key: op.key,
          op: op.op,
          value: op.op === 'cas' ? '' : (op.value ?? ''),
          from: op.from ?? '',
          to: op.to ?? '',
          ok: !!op.ok,
          call: op.call,
          return: op.return ?? null,
          client: op.client,
        }),
      )
    }
    return out
  }

  /**
   * lostWrites counts keys whose last acknowledged write (a put, or a cas that swapped) is
   * not what the final read found, when no other write to the key overlapped it or came
   * after it.
   */
  /**
   * @param {Record<string, string>} finals the value the final read found, by key
   * @returns {number}
   */
  lostWrites(finals) {
    /** @type {Map<string, Op[]>} */
    const byKey = new Map()
    for (const op of this.ops.values()) {
      if (op.op === 'read' || op.failed) continue
      const list = byKey.get(op.key) ?? []
      list.push(op)
      byKey.set(op.key, list)
    }
    let lost = 0
    for (const [key, writes] of byKey) {
      const acked = writes.filter((w) => w.return !== undefined && (w.op === 'write' || w.ok))
      if (acked.length === 0 || !(key in finals)) continue
      const last = acked.reduce((a, b) => (b.return > a.return ? b : a))
      // Another write that overlapped it, or may yet apply, could be the last one.
      const later = writes.some(
        (w) => w !== last && (w.return === undefined || w.return > last.call),
      )
      const value = last.op === 'write' ? last.value : last.to
      if (!later && finals[key] !== value) lost++
    }
    return lost
  }

  /**
   * recovery is, for a fault healed at `healedAt`, how long until every shard answered an
   * operation called after it (ms), or null if one never did.
   */
  /**
   * @param {number} healedAt
   * @param {Record<string, number>} shardOf the shard of each key
   * @returns {number | null}
   */
  recovery(healedAt, shardOf) {
    /** @type {Map<number, number>} */
    const firsts = new Map()
    for (const op of this.ops.values()) {
      if (op.failed || op.return === undefined || op.call < healedAt) continue
      const s = shardOf[op.key]
      firsts.set(s, Math.min(firsts.get(s) ?? Number.POSITIVE_INFINITY, op.return))
    }
    const shards = new Set(Object.values(shardOf))
    if (firsts.size < shards.size) return null
    return (Math.max(...firsts.values()) - healedAt) / 1000
  }
}
