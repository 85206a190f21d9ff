// Format versions: what this build writes and reads of the formats the TypeScript side owns
// (the engine's own, transport frames and session tables, are in crates/engine/src/version.rs).
// The rule they follow is in docs/upgrades.md: a build reads every version of a format from
// its oldest to its newest, and refuses any other with ERR_UNSUPPORTED_VERSION, never reading
// it as one it knows. A format's version changes only when its layout does.
import { ZongziError } from './errors'

/**
 * REGISTRY_VERSION is the newest format of the registry's commands and snapshots (shard 0)
 * this build reads and, once every host of the cluster reads it, writes. Version 1 is the
 * layout without versions: commands carry no `v`, snapshot headers no `version`.
 */
export const REGISTRY_VERSION = 2

/** OLDEST_REGISTRY_VERSION is the oldest registry format this build reads. */
export const OLDEST_REGISTRY_VERSION = 1

/**
 * BUS_VERSION is the format of bus requests this build sends, in the BUS_VERSION_HEADER
 * metadata of every call. A request without the header is version 1.
 */
export const BUS_VERSION = 1

/** OLDEST_BUS_VERSION is the oldest format of bus requests this build serves. */
export const OLDEST_BUS_VERSION = 1

/** BUS_VERSION_HEADER is the metadata key that carries a bus request's format version. */
export const BUS_VERSION_HEADER = 'zongzi-version'

/**
 * checkVersion throws ERR_UNSUPPORTED_VERSION unless `version` (of `format`, as it was
 * found) is a whole number from `oldest` to `newest`.
 */
export function checkVersion(
  format: string,
  version: unknown,
  oldest: number,
  newest: number,
): void {
  if (Number.isInteger(version) && (version as number) >= oldest && (version as number) <= newest)
    return
  const shown = typeof version === 'string' ? version.slice(0, 32) : String(version)
  const fix =
    typeof version === 'number' && version > newest
      ? 'a newer build wrote it: upgrade this host'
      : typeof version === 'number' && version < oldest
        ? 'a build too old for this one wrote it: upgrade that one first'
        : 'it is not a version'
  throw new ZongziError(
    'ERR_UNSUPPORTED_VERSION',
    `${format} version ${shown} is not supported: this build reads versions ${oldest} to ` +
      `${newest}; ${fix} (see docs/upgrades.md)`,
  )
}
