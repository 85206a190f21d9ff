// Snapshots as JSON Lines, for the recipes' state machines: written in pieces that respect
// the stream's backpressure, and read back a line at a time.
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'

/** writeLines writes each value of `rows` as one JSON line, then ends `out`. */
export async function writeLines(out: Writable, rows: Iterable<unknown>): Promise<void> {
  let chunk = ''
  for (const row of rows) {
    chunk += `${JSON.stringify(row)}\n`
    if (chunk.length >= 65_536) {
      if (!out.write(chunk)) await once(out, 'drain')
      chunk = ''
    }
  }
  out.end(chunk)
}

/** readLines yields each JSON line of `input`, parsed. */
export async function* readLines<T>(input: Readable): AsyncIterable<T> {
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line !== '') yield JSON.parse(line) as T
  }
}
