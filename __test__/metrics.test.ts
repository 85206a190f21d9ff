import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { set } from '../examples/kv.mjs'
import { type EngineSnapshot, registerEngineMetrics } from '../ts/ops/engine-metrics'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { waitUntil } from './helpers'

/** sample returns the value of the series line `name{labels}` in a scrape, if there is one. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n'))
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  return undefined
}

const snapshot: EngineSnapshot = {
  proposals: 10,
  entriesCommitted: 9,
  entriesApplied: 8,
  leaderChanges: 2,
  proposalsRefused: 1,
  quiescedReplicas: 5,
  queues: { stepCommands: 3, applyTasks: 0 },
  snapshotsSent: 3,
  snapshotsReceived: 4,
  snapshotBytesSent: 300,
  snapshotBytesReceived: 400,
  fsyncSeconds: { bounds: [0.001, 0.01], counts: [5, 2, 1], sum: 0.1, count: 8 },
  entriesPerFsync: { bounds: [1, 10], counts: [1, 1], sum: 12, count: 2 },
  peers: [{ address: '127.0.0.1:7001', bytesSent: 99, framesReceived: 7 }],
}

describe('the engine series', () => {
  it('maps a host snapshot to Prometheus series, read once a scrape', async () => {
    const registry = new Registry()
    let reads = 0
    const host = {
      metrics: () => {
        reads++
        return snapshot
      },
    }
    registerEngineMetrics(registry, () => host)
    const text = await registry.metrics()
    expect(reads).toBe(1)
    expect(sample(text, 'zongzi_engine_proposals_total')).toBe(10)
    expect(sample(text, 'zongzi_engine_snapshot_received_bytes_total')).toBe(400)
    expect(sample(text, 'zongzi_engine_commits_total')).toBe(9)
    expect(sample(text, 'zongzi_engine_admission_refusals_total')).toBe(1)
    expect(sample(text, 'zongzi_engine_quiesced_replicas')).toBe(5)
    expect(sample(text, 'zongzi_engine_queue_depth{queue="stepCommands"}')).toBe(3)
    // Buckets are cumulative; the overflow bucket shows in +Inf only.
    expect(sample(text, 'zongzi_engine_fsync_seconds_bucket{le="0.001"}')).toBe(5)
    expect(sample(text, 'zongzi_engine_fsync_seconds_bucket{le="0.01"}')).toBe(7)
    expect(sample(text, 'zongzi_engine_fsync_seconds_bucket{le="+Inf"}')).toBe(8)
    expect(sample(text, 'zongzi_engine_fsync_seconds_count')).toBe(8)
    expect(sample(text, 'zongzi_engine_entries_per_fsync_sum')).toBe(12)
    expect(sample(text, 'zongzi_engine_peer_sent_bytes_total{peer="127.0.0.1:7001"}')).toBe(99)
    // A field the snapshot leaves out is a series with no samples.
    expect(text).not.toContain('zongzi_engine_apply_lag_entries_count')
    expect(text).not.toContain('zongzi_engine_peer_received_bytes_total{')
    await registry.metrics()
    expect(reads).toBe(2)
  })

  it('leaves the engine series empty for a host without metrics() or one that fails', async () => {
    for (const host of [{}, { metrics: () => Promise.reject(new Error('gone')) }, undefined]) {
      const registry = new Registry()
      registerEngineMetrics(registry, () => host)
      const text = await registry.metrics()
      expect(text).toContain('# TYPE zongzi_engine_proposals_total counter')
      expect(sample(text, 'zongzi_engine_proposals_total')).toBeUndefined()
    }
  })
})

describe('an agent', () => {
  let c: OpsCluster
  const registry = new Registry()
  beforeAll(async () => {
    c = await opsCluster('metrics', (i) => (i === 0 ? { metrics: registry } : {}))
  }, 60_000)
  afterAll(() => c?.stop())

  it('exports its registry, controllers and bus calls, in the registry it was given', async () => {
    const [a, b] = c.agents
    expect(a.metrics).toBe(registry)
    expect(b.metrics).not.toBe(registry)
    const before = await registry.metrics()
    const sh = await a.createShard('kv', { name: 'm', placement: { members: { count: 3 } } })
    await a.waitForShard(sh.id)
    await b.client(sh.id).propose(set('k', 'v'))
    const text = await waitUntil(
      async () => {
        const t = await registry.metrics()
        return sample(t, 'zongzi_shards{status="active"}') === 2 ? t : undefined
      },
      { what: 'the new shard counted' },
    )
    expect(sample(text, 'zongzi_hosts{status="active"}')).toBe(3)
    expect(sample(text, 'zongzi_hosts{status="gone"}')).toBe(0)
    expect(sample(text, 'zongzi_replicas{status="active"}')).toBe(6)
    expect(sample(text, 'zongzi_placement_errors')).toBe(0)
    expect(sample(text, 'zongzi_membership_changes_total{change="added"}')).toBeGreaterThan(0)
    const index = (t: string) => sample(t, 'zongzi_registry_index') ?? 0
    expect(index(text)).toBeGreaterThan(index(before))
    const passes = (t: string) => sample(t, 'zongzi_controller_passes_total{controller="host"}')
    expect(passes(text)).toBeGreaterThan(passes(before) ?? 0)
    expect(sample(text, 'zongzi_controller_pass_seconds_count{controller="host"}')).toBe(
      passes(text),
    )
    // Every host serves Probe calls from the registry leader's liveness checks.
    const probes = await waitUntil(async () =>
      sample(await registry.metrics(), 'zongzi_bus_calls_total{method="Probe",code="OK"}'),
    )
    expect(probes).toBeGreaterThan(0)
    expect(text).toMatch(/zongzi_bus_call_seconds_bucket\{le="[^"]+",method="Probe"\}/)
    // The engine's own series, read from the host: the write above was committed and applied.
    expect(sample(text, 'zongzi_engine_commits_total')).toBeGreaterThan(0)
    expect(sample(text, 'zongzi_engine_applied_entries_total')).toBeGreaterThan(0)
    expect(sample(text, 'zongzi_engine_replicas')).toBe(2)
    expect(sample(text, 'zongzi_engine_fsync_seconds_count')).toBeGreaterThan(0)
  })
})
