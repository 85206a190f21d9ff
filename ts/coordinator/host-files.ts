// What an agent keeps beside the engine's data in its data directory: its host id, and the
// Raft address it listened on (so a restart without one listens where its peers expect it).
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { ZongziError } from '../binding/errors'
import type { Logger } from './control/logger'

/** hostIdIn returns the host id kept in `dataDir`, making and keeping a new one if none is. */
export function hostIdIn(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true })
  const file = join(dataDir, 'host-id')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  return newHostIdIn(dataDir)
}

/** newHostIdIn makes a new host id and keeps it in `dataDir`, in place of any earlier one. */
export function newHostIdIn(dataDir: string): string {
  const id = randomUUID()
  writeFileSync(join(dataDir, 'host-id'), id)
  return id
}

/** savedRaftAddress is the Raft address kept in `dataDir`, if any. */
export function savedRaftAddress(dataDir: string): string | undefined {
  const file = join(dataDir, 'raft-address')
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined
}

/**
 * keepRaftAddress keeps `bound` as the Raft address in `dataDir` (atomically), unless it is
 * what `saved` says already or a port still to be picked.
 */
export function keepRaftAddress(dataDir: string, bound: string, saved?: string): void {
  if (bound === saved || bound.endsWith(':0')) return
  const file = join(dataDir, 'raft-address')
  writeFileSync(`${file}.tmp`, bound)
  renameSync(`${file}.tmp`, file)
}

/**
 * lostLog handles a data directory that kept its host id but lost its Raft log: with a join
 * token, the host takes (and returns) a new id and joins as a new host (the registry marks
 * the earlier one at its address gone); without one, it fails.
 */
export function lostLog(
  o: { dataDir: string; joinToken?: string },
  hostId: string,
  log: Logger,
): string {
  if (!o.joinToken) {
    const how = 'start it with a join token (options.joinToken) to join as a new host'
    throw new ZongziError(
      'ERR_INVALID_ARGUMENT',
      `host ${hostId} lost its Raft log (${join(o.dataDir, 'raft')}); ${how}`,
    )
  }
  log.warn({ formerId: hostId }, 'the Raft log is lost: joining as a new host')
  return newHostIdIn(o.dataDir)
}
