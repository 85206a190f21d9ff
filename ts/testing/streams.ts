// Snapshots in memory: what a state machine writes to its snapshot stream, kept as bytes, and
// given back to another in chunks of random sizes, as a file read in pieces would be.
import { Readable, Writable } from 'node:stream'
import { finished } from 'node:stream/promises'

import type { StateMachine } from '../binding/state-machine'
import type { Random } from './random'

/** saveToBuffer runs `sm.saveSnapshot` into memory and returns what it wrote. */
export async function saveToBuffer(sm: StateMachine): Promise<Buffer> {
  const chunks: Buffer[] = []
  const out = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(Buffer.from(chunk))
      done()
    },
  })
  await sm.saveSnapshot(out)
  // As the engine does: a state machine may leave ending the stream to its caller.
  if (!out.writableEnded) out.end()
  await finished(out)
  return Buffer.concat(chunks)
}

/** chunked is a stream of `bytes` cut at random places (never more than 64 KiB a piece). */
export function chunked(bytes: Buffer, random: Random): Readable {
  const pieces: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + random.int(Math.min(65_536, Math.max(1, bytes.length >> 1)))
    pieces.push(bytes.subarray(at, at + n))
    at += n
  }
  return Readable.from(pieces, { objectMode: false })
}
