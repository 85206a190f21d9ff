// The engine's series: what the binding's `host.metrics()` snapshot holds, as Prometheus
// series. One call to the binding per scrape, however many series; a host without
// `metrics()` (an older binding) exports none of them. The whole mapping is the tables below.
import type { Registry } from 'prom-client'

/**
 * EngineHistogram is a histogram as the engine counts it: `counts[i]` observations fell in
 * bucket i (at most `bounds[i]`, above `bounds[i - 1]`); a count past the last bound is the
 * overflow bucket. `sum` and `count` are of every observation.
 */
export interface EngineHistogram {
  bounds: number[]
  counts: number[]
  sum: number
  count: number
}

/** EnginePeer is what the engine sent to and received from one peer host. */
export interface EnginePeer {
  address: string
  bytesSent?: number
  bytesReceived?: number
  framesSent?: number
  framesReceived?: number
}

/**
 * EngineSnapshot is one reading of the engine's counters since the host opened: every field
 * is optional, and a series whose field is absent is left out of the scrape.
 */
export interface EngineSnapshot {
  proposals?: number
  entriesCommitted?: number
  entriesApplied?: number
  leaderChanges?: number
  proposalsRefused?: number
  messagesDropped?: number
  logRecordsDropped?: number
  replicas?: number
  quiescedReplicas?: number
  queues?: Record<string, number>
  snapshotsSent?: number
  snapshotsReceived?: number
  snapshotBytesSent?: number
  snapshotBytesReceived?: number
  fsyncSeconds?: EngineHistogram
  entriesPerFsync?: EngineHistogram
  applyLag?: EngineHistogram
  peers?: EnginePeer[]
}

/** MetricsHost is a host that may offer an engine snapshot. */
export interface MetricsHost {
  metrics?: () => EngineSnapshot | Promise<EngineSnapshot>
}

type Counted = Exclude<keyof EngineSnapshot, 'peers' | 'queues' | Gauged | HistogramKey>
type Gauged = 'replicas' | 'quiescedReplicas'
type HistogramKey = 'fsyncSeconds' | 'entriesPerFsync' | 'applyLag'
type PeerKey = Exclude<keyof EnginePeer, 'address'>

/** The counters: snapshot field, series name, help. */
const COUNTERS: Array<[Counted, string, string]> = [
  ['proposals', 'zongzi_engine_proposals_total', 'Proposals the engine took.'],
  ['entriesCommitted', 'zongzi_engine_commits_total', 'Entries the engine committed.'],
  ['entriesApplied', 'zongzi_engine_applied_entries_total', 'Entries handed to state machines.'],
  ['leaderChanges', 'zongzi_engine_leader_changes_total', 'Leader changes the replicas saw.'],
  [
    'proposalsRefused',
    'zongzi_engine_admission_refusals_total',
    'Proposals refused because a queue was full.',
  ],
  ['messagesDropped', 'zongzi_engine_messages_dropped_total', 'Raft messages dropped.'],
  [
    'logRecordsDropped',
    'zongzi_engine_log_records_dropped_total',
    'Log records dropped because the queue to the logger was full.',
  ],
  ['snapshotsSent', 'zongzi_engine_snapshots_sent_total', 'Snapshots sent to peers.'],
  ['snapshotsReceived', 'zongzi_engine_snapshots_received_total', 'Snapshots received.'],
  ['snapshotBytesSent', 'zongzi_engine_snapshot_sent_bytes_total', 'Bytes of snapshots sent.'],
  [
    'snapshotBytesReceived',
    'zongzi_engine_snapshot_received_bytes_total',
    'Bytes of snapshots received.',
  ],
]

/** The histograms: snapshot field, series name, help. */
const HISTOGRAMS: Array<[HistogramKey, string, string]> = [
  ['fsyncSeconds', 'zongzi_engine_fsync_seconds', 'How long a log sync took.'],
  ['entriesPerFsync', 'zongzi_engine_entries_per_fsync', 'Entries made durable by one sync.'],
  [
    'applyLag',
    'zongzi_engine_apply_lag_entries',
    'Entries committed but not yet applied, per replica (one observation a replica a scrape).',
  ],
]

/** The gauges: snapshot field, series name, help. */
const GAUGES: Array<[Gauged, string, string]> = [
  ['replicas', 'zongzi_engine_replicas', 'Replicas running on this host.'],
  ['quiescedReplicas', 'zongzi_engine_quiesced_replicas', 'Replicas of idle shards, quiesced.'],
]

/** The per-peer counters, labelled by the peer's Raft address (one series a host). */
const PEER_COUNTERS: Array<[PeerKey, string, string]> = [
  ['bytesSent', 'zongzi_engine_peer_sent_bytes_total', 'Bytes sent to a peer.'],
  ['bytesReceived', 'zongzi_engine_peer_received_bytes_total', 'Bytes received from a peer.'],
  ['framesSent', 'zongzi_engine_peer_sent_frames_total', 'Frames sent to a peer.'],
  ['framesReceived', 'zongzi_engine_peer_received_frames_total', 'Frames received from a peer.'],
]

/** A value of a series as prom-client prints it. */
interface Value {
  value: number
  labels: Record<string, string | number>
  metricName?: string
}

/**
 * registerEngineMetrics adds the engine's series to `registry`, read from `host.metrics()`
 * when the host has it. A scrape reads the snapshot once (its series share the reading); a
 * reading that fails leaves the engine's series out of that scrape.
 */
export function registerEngineMetrics(registry: Registry, host: () => MetricsHost | undefined) {
  let reading: Promise<EngineSnapshot | undefined> | undefined
  const read = (): Promise<EngineSnapshot | undefined> => {
    if (!reading) {
      const h = host()
      // Every series of one scrape asks at once (prom-client gets them all before awaiting
      // any), so they share this reading; the next scrape reads again.
      reading = Promise.resolve()
        .then(() => (h && typeof h.metrics === 'function' ? h.metrics() : undefined))
        .catch(() => undefined)
        .finally(() => {
          reading = undefined
        })
    }
    return reading
  }
  const series = (
    name: string,
    help: string,
    type: 'counter' | 'gauge' | 'histogram',
    values: Values,
  ) =>
    registry.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      async get() {
        const s = await read()
        return { name, help, type, aggregator: 'sum', values: s ? values(s, name) : [] }
      },
      reset() {},
    } as unknown as Parameters<Registry['registerMetric']>[0])
  for (const [key, name, help] of COUNTERS)
    series(name, help, 'counter', (s) =>
      typeof s[key] === 'number' ? [{ value: s[key] as number, labels: {} }] : [],
    )
  for (const [key, name, help] of GAUGES)
    series(name, help, 'gauge', (s) =>
      typeof s[key] === 'number' ? [{ value: s[key] as number, labels: {} }] : [],
    )
  series('zongzi_engine_queue_depth', 'Work waiting in an engine queue.', 'gauge', (s) =>
    Object.entries(s.queues ?? {})
      .filter(([, v]) => typeof v === 'number')
      .map(([queue, value]) => ({ value, labels: { queue } })),
  )
  for (const [key, name, help] of HISTOGRAMS)
    series(name, help, 'histogram', (s, n) => histogramValues(n, s[key]))
  for (const [key, name, help] of PEER_COUNTERS)
    series(name, help, 'counter', (s) =>
      (s.peers ?? [])
        .filter((p) => typeof p[key] === 'number')
        .map((p) => ({ value: p[key] as number, labels: { peer: p.address } })),
    )
}

type Values = (s: EngineSnapshot, name: string) => Value[]

/** histogramValues turns an engine histogram into Prometheus's cumulative buckets. */
export function histogramValues(name: string, h: EngineHistogram | undefined): Value[] {
  if (!h || !Array.isArray(h.bounds) || !Array.isArray(h.counts)) return []
  const out: Value[] = []
  let total = 0
  h.bounds.forEach((le, i) => {
    total += h.counts[i] ?? 0
    out.push({ metricName: `${name}_bucket`, labels: { le }, value: total })
  })
  out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count })
  out.push({ metricName: `${name}_sum`, labels: {}, value: h.sum })
  out.push({ metricName: `${name}_count`, labels: {}, value: h.count })
  return out
}
