// The registry's format version (see binding/versions.ts and docs/upgrades.md): which format
// the cluster writes its commands and snapshots in, how a command carries its version, and
// how the cluster moves to the next one. A host reads every version up to REGISTRY_VERSION;
// the cluster writes the newest one that every host on record reads, raised by the registry
// leader (`cluster.version`) and never lowered, like etcd's cluster version.
import { ZongziError } from '../../binding/errors'
import { checkVersion, OLDEST_REGISTRY_VERSION, REGISTRY_VERSION } from '../../binding/versions'
import type { HostRecord, Outcome, ReplicaRecord } from './records'
import { type Fields, isId } from './fields'
import { Invalid, need, type Writer } from './writer'

/**
 * checkRegistryVersion throws ERR_UNSUPPORTED_VERSION unless this build reads registry
 * format `version` (of a command or a snapshot, as it was found).
 */
export function checkRegistryVersion(what: string, version: unknown): void {
  checkVersion(what, version, OLDEST_REGISTRY_VERSION, REGISTRY_VERSION)
}

/**
 * opened is a decoded command without its envelope's version (`v`; none is format 1), once
 * this build reads that version. Any other throws ERR_UNSUPPORTED_VERSION (a ZongziError, not
 * Invalid): the replica must stop rather than apply, or refuse, a command it cannot read,
 * since every other replica applies it.
 */
export function opened(cmd: unknown): unknown {
  if (cmd === null || typeof cmd !== 'object' || !('v' in cmd)) return cmd
  const { v, ...rest } = cmd as Record<string, unknown>
  checkRegistryVersion('registry command', v)
  return rest
}

/**
 * envelope is the bytes of command `cmd` by `by`, written in the cluster's registry format
 * `version`: version 1 has no `v` (it is the layout of builds before versions).
 */
export function envelope(cmd: object, by: string, version: number): Buffer {
  const v = version > 1 ? { v: version } : {}
  return Buffer.from(JSON.stringify({ ...v, ...cmd, by }))
}

/** VersionView is what readableVersion reads: the committed state or a command's writer. */
interface VersionView {
  hosts: { values(): Iterable<HostRecord>; has(id: string): boolean }
  replicasOf(shardId: number): Iterable<ReplicaRecord>
}

/**
 * readableVersion is the newest registry format every host of `s` reads, as far as their
 * records tell: hosts not gone, and the hosts of shard 0's replicas that have not written
 * their record yet (as version 1). It is at most this build's REGISTRY_VERSION.
 */
export function readableVersion(s: VersionView): number {
  return Math.min(REGISTRY_VERSION, ...behind(s, REGISTRY_VERSION).map(([, v]) => v))
}

/** behind lists the hosts of `s` (as readableVersion counts them) that read below `version`. */
function behind(s: VersionView, version: number): Array<[string, number]> {
  const out: Array<[string, number]> = []
  for (const h of s.hosts.values()) {
    const v = h.version ?? 1
    if (h.status !== 'gone' && v < version) out.push([h.id, v])
  }
  for (const r of s.replicasOf(0)) if (!s.hosts.has(r.hostId)) out.push([r.hostId, 1])
  return out
}

/**
 * hostVersion checks the registry format a host's record claims (host.put): absent is 1, and
 * a host that reads less than the cluster writes is refused (ERR_UNSUPPORTED_VERSION).
 */
export function hostVersion(w: Writer, hostId: string, version: unknown): number | undefined {
  need(version === undefined || isId(version), 'a host version is a whole number')
  const have = w.access.version ?? 1
  const reads = version ?? 1
  const back = 'a cluster never goes back to an older format; start the host with a newer build'
  if (reads < have)
    throw new Invalid(
      `host ${hostId} reads registry format ${reads}, but the cluster writes ${have}: ${back}`,
      'ERR_UNSUPPORTED_VERSION',
    )
  return version as number | undefined
}

/**
 * clusterVersion (cluster.version) raises the registry format the cluster writes to
 * `version`; a version at or below the current one changes nothing. Only the registry leader
 * proposes it (see proposers.ts), once readableVersion has reached it. A replica whose build
 * does not read `version` stops (ERR_UNSUPPORTED_VERSION) rather than go on without it.
 */
export function clusterVersion(w: Writer, c: Fields): Outcome {
  need(isId(c.version) && c.version >= 1, 'cluster.version needs a version')
  need(w.shards.has(0), 'the cluster is not initialised')
  if (c.version > REGISTRY_VERSION)
    throw new ZongziError(
      'ERR_UNSUPPORTED_VERSION',
      `the cluster moved to registry format ${c.version}, and this build reads up to ` +
        `${REGISTRY_VERSION}; upgrade this host (see docs/upgrades.md)`,
    )
  if (c.version <= (w.access.version ?? 1)) return { ok: true }
  // The leader proposed this from its own applied state; a host record written since (a host
  // gone back to the older build, or a new one) is ordered before it, so every replica checks
  // again here, from replicated state alone.
  const [lagging] = behind(w, c.version)
  need(
    lagging === undefined,
    `the cluster cannot move to registry format ${c.version}: host ${lagging?.[0]} reads ` +
      `registry format ${lagging?.[1]}`,
  )
  w.access = { ...w.access, version: c.version }
  return { ok: true }
}
