// A persistent state machine on SQLite (better-sqlite3): a key-value map kept in a database
// file, with the index of the last entry applied stored in the same transaction as the data,
// so that a restart resumes exactly where the data is and the engine replays only what
// follows. Snapshots stream from a read transaction on a second connection, a consistent view
// that later applies do not change, and wait on the stream's backpressure, so the JavaScript
// thread (and every other shard's applies) goes on meanwhile.
import { once } from 'node:events'
import { createInterface } from 'node:readline'

import Database from 'better-sqlite3'

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS applied (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL);
  INSERT OR IGNORE INTO applied (id, idx) VALUES (1, 0);
`

/** set builds a command: `{ op: 'set', key, value }` as JSON. */
export const set = (key, value) => Buffer.from(JSON.stringify({ op: 'set', key, value }))
/** del builds a command: `{ op: 'delete', key }` as JSON. */
export const del = (key) => Buffer.from(JSON.stringify({ op: 'delete', key }))

/**
 * SqliteKv keeps a shard's map in the SQLite database at `file` (one file per replica).
 * Commands are JSON `{ op: 'set', key, value }` or `{ op: 'delete', key }`; each answers 1
 * and the previous value (or 0 and nothing if it cannot be read). A query is a key; the
 * answer its value, or absent.
 */
export class SqliteKv {
  /** @param {string} file the database file */
  constructor(file) {
    this.file = file
    this.db = undefined
  }

  /** open opens (or creates) the database and resolves with the index it last applied. */
  async open() {
    const db = new Database(this.file)
    // WAL: readers (snapshots, queries) and the writer do not block each other. NORMAL: a
    // commit survives the process dying; sync() makes it survive the machine losing power.
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(SCHEMA)
    this.db = db
    this.get = db.prepare('SELECT value FROM kv WHERE key = ?').pluck()
    this.put = db.prepare(
      `INSERT INTO kv (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    )
    this.remove = db.prepare('DELETE FROM kv WHERE key = ?')
    this.mark = db.prepare('UPDATE applied SET idx = ? WHERE id = 1')
    this.index = db.prepare('SELECT idx FROM applied WHERE id = 1').pluck()
    // A batch is one transaction: its data and its last index commit together, or neither.
    this.batch = db.transaction((entries) => {
      const results = entries.map((e) => this.#apply(e))
      this.mark.run(entries[entries.length - 1].index)
      return results
    })
    return this.index.get()
  }

  #apply(e) {
    let c
    try {
      c = JSON.parse(e.data.toString())
    } catch {
      return { value: 0 }
    }
    const prev = this.get.get(c.key)
    if (c.op === 'set') this.put.run(c.key, String(c.value))
    else if (c.op === 'delete') this.remove.run(c.key)
    else return { value: 0 }
    return { value: 1, data: Buffer.from(prev ?? '') }
  }

  /** update applies a batch of entries in one transaction, with its last index. */
  update(entries) {
    return this.batch(entries)
  }

  /** query answers a key's value, or undefined if absent. */
  query(q) {
    const v = this.get.get(q.toString())
    return v === undefined ? undefined : Buffer.from(v)
  }

  /**
   * sync makes every applied entry durable: a commit with synchronous = FULL syncs the WAL,
   * and with it every commit before.
   */
  async sync() {
    this.#durably(() => this.mark.run(this.index.get()))
  }

  #durably(f) {
    this.db.pragma('synchronous = FULL')
    try {
      this.db.transaction(f)()
    } finally {
      this.db.pragma('synchronous = NORMAL')
    }
  }

  /**
   * saveSnapshot writes the index it holds, then one row a line. It reads inside a
   * transaction on a connection of its own: the rows are those of one moment, whatever is
   * applied while they are written.
   */
  async saveSnapshot(out) {
    const reader = new Database(this.file, { readonly: true })
    try {
      reader.exec('BEGIN')
      // The first read fixes the transaction's view: the state as of this call.
      const index = reader.prepare('SELECT idx FROM applied WHERE id = 1').pluck().get()
      let chunk = `${JSON.stringify({ index })}\n`
      for (const row of reader.prepare('SELECT key, value FROM kv ORDER BY key').raw().iterate()) {
        chunk += `${JSON.stringify(row)}\n`
        if (chunk.length >= 65_536) {
          if (!out.write(chunk)) await once(out, 'drain')
          chunk = ''
        }
      }
      out.end(chunk)
      reader.exec('COMMIT')
    } finally {
      reader.close()
    }
  }

  /**
   * recoverFromSnapshot replaces the whole map with a snapshot's, and its applied index with
   * `index`, in one durable transaction: the log before `index` may already be gone.
   */
  async recoverFromSnapshot(input, index) {
    // Rows are gathered first, so that the swap is one transaction that no query sees half
    // done (a store too large for memory would stage them in a table of their own instead).
    const rows = []
    let first = true
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line === '') continue
      if (first) first = false
      else rows.push(JSON.parse(line))
    }
    this.#durably(() => {
      this.db.exec('DELETE FROM kv')
      for (const [key, value] of rows) this.put.run(key, value)
      this.mark.run(index)
    })
  }

  /** close closes the database. */
  close() {
    this.db?.close()
    this.db = undefined
  }
}
