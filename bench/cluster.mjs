// Shared by the JavaScript benchmarks: argument parsing, and a cluster of hosts in this
// process over loopback TCP (fsync on) with one replica of every shard on each host.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  createCertificateAuthority,
  createHostCertificate,
  Host,
  writeHostFiles,
} from '../dist/index.js'

/** parseArgs reads `--name number` pairs over `defaults`; an unknown name exits with usage. */
export function parseArgs(defaults, usage) {
  const args = { ...defaults }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '')
    if (!(key in args) || !Number.isFinite(Number(argv[i + 1]))) {
      console.error(`usage: ${usage}`)
      process.exit(2)
    }
    args[key] = Number(argv[i + 1])
  }
  return args
}

/**
 * openCluster starts `hosts` hosts with `shards` shards, each with a state machine from
 * `factory` (over mutual TLS with `tls`), and waits (bounded) for every shard's leader. It
 * resolves with the hosts, the leader's host of each shard and a `close()` that removes
 * everything.
 */
export async function openCluster({ hosts: n, shards, factory, options = {}, tls = false }) {
  const root = mkdtempSync(join(tmpdir(), 'zongzi-bench-'))
  if (tls) {
    const ca = createCertificateAuthority()
    const host = createHostCertificate(ca, ['127.0.0.1'])
    options = { ...options, tls: writeHostFiles(join(root, 'tls'), ca, host) }
  }
  const hosts = []
  for (let i = 0; i < n; i++) {
    hosts.push(Host.open({ clusterId: 1, dataDir: join(root, `host${i}`), ...options }))
  }
  const t0 = performance.now()
  for (let s = 1; s <= shards; s++) {
    const voters = hosts.map((h, i) => ({ replicaId: s * 16 + i + 1, address: h.raftAddress }))
    await Promise.all(
      hosts.map((h, i) =>
        h.startReplica(s, s * 16 + i + 1, { mode: 'bootstrap', voters }, factory),
      ),
    )
  }
  const leaderHost = new Map()
  for (let attempt = 0; leaderHost.size < shards && attempt < 2400; attempt++) {
    for (let s = 1; s <= shards; s++) {
      if (leaderHost.has(s)) continue
      for (const h of hosts) {
        const st = await h.status(s)
        if (st.leaderId !== 0 && st.leaderId === st.replicaId) leaderHost.set(s, h)
      }
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const readySecs = (performance.now() - t0) / 1000
  console.error(`${shards} shards on ${n} hosts ready in ${readySecs.toFixed(1)}s`)
  return {
    hosts,
    leaderOf: (shard) => leaderHost.get(shard) ?? hosts[0],
    async close() {
      await Promise.all(hosts.map((h) => h.close()))
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/** percentile returns the `p` quantile of sorted numbers (0 when there are none). */
export const percentile = (sorted, p) =>
  sorted.length ? sorted[Math.round((sorted.length - 1) * p)] : 0
