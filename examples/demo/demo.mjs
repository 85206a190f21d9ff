// The demo: three agents as separate processes on loopback, with data in temporary
// directories and free ports; a KV state machine; shards with placement; writes and reads
// through clients on every host; the topology and the achieved rate; a clean shutdown. Both
// channels between agents, the bus and the Raft transport, run mutual TLS with certificates
// the demo makes for itself.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
} from '../../dist/index.mjs'
import { ChildClient } from '../../harness/child-client.mjs'
import { loopbackAddresses } from '../../harness/ports.mjs'

const SECONDS = Number(process.env.DEMO_SECONDS ?? 5)
const AGENT = new URL('./agent.mjs', import.meta.url).pathname

const root = mkdtempSync(join(tmpdir(), 'zongzi-demo-'))
const peers = await loopbackAddresses(3)
const zones = ['a', 'b', 'c']
const ca = createCertificateAuthority()
const agents = await Promise.all(peers.map(() => ChildClient.start(AGENT)))

try {
  const t0 = Date.now()
  const files = peers.map((_, i) =>
    writeHostFiles(join(root, `tls${i}`), ca, createHostCertificate(ca, ['127.0.0.1'])),
  )
  const ids = await Promise.all(
    agents.map((a, i) => {
      const tls = files[i]
      const dataDir = join(root, `host${i}`)
      const args = { cluster: 'demo', peers, dataDir, apiAddress: peers[i], zone: zones[i], tls }
      return a.call('start', args)
    }),
  )
  console.log(
    `3 agents started in ${((Date.now() - t0) / 1000).toFixed(1)}s (peers ${peers.join(', ')})`,
  )
  console.log('bus and Raft transport over mutual TLS, certificates of a CA made for the demo')
  // The page asks for a host's certificate, as the bus does: a browser needs one imported.
  const page = `https://${await agents[0].call('httpAddress')}/`
  const { ca: caFile, cert, key } = files[0]
  console.log(`status page: ${page} (with a host's certificate, as the bus)`)
  console.log(`  curl --cacert ${caFile} --cert ${cert} --key ${key} ${page}status.json`)
  const shards = []
  for (const name of ['users', 'orders', 'carts', 'sessions']) {
    shards.push(
      await agents[0].call('createShard', {
        name,
        placement: { members: { count: 3 }, vary: ['zone'] },
      }),
    )
  }
  // One shard with a single voter in zone a and non-voting copies on every other host.
  shards.push(
    await agents[1].call('createShard', {
      name: 'config',
      placement: { members: { count: 1, tags: { zone: 'a' } }, cover: {} },
    }),
  )
  await Promise.all(agents.map((a) => a.call('waitReplicas', { shards })))

  const t1 = Date.now()
  const results = await Promise.all(
    agents.map((a) => a.call('work', { shards, seconds: SECONDS, clients: 64 })),
  )
  const secs = (Date.now() - t1) / 1000
  const writes = results.reduce((n, r) => n + r.writes, 0)
  const reads = results.reduce((n, r) => n + r.reads, 0)

  const topo = await agents[2].call('topology')
  const short = (id) => `host${ids.indexOf(id)}`
  console.log('\nhosts')
  for (const h of topo.hosts) console.log(`  ${short(h.id)}  ${h.api}  zone=${h.zone}`)
  console.log('\nshards')
  for (const s of topo.shards) {
    const reps = s.replicas.map((r) => {
      const marks = `${r.nonVoting ? '(non-voting)' : ''}${r.id === s.leader ? '*' : ''}`
      return `${r.id}@${short(r.host)}${marks}`
    })
    console.log(`  ${String(s.id).padStart(2)} ${(s.name || '-').padEnd(9)} ${reps.join('  ')}`)
  }
  console.log('  (* = leader)')
  const rates = `${Math.round(writes / secs)} writes/s, ${Math.round(reads / secs)} reads/s`
  const done = `${writes} writes and ${reads} linearizable reads in ${secs.toFixed(1)}s`
  console.log(`\n${done} from 3 hosts: ${rates}`)
  if (process.stdin.isTTY) {
    // At a terminal, the cluster (and its status page) stays up until Enter.
    console.log(`\nstatus page: ${page}; press Enter to stop`)
    await new Promise((resolve) => process.stdin.once('data', resolve))
    process.stdin.pause()
  }
} finally {
  await Promise.allSettled(agents.map((a) => a.call('stop')))
  await Promise.all(
    agents.map((a) => {
      if (a.child.connected) a.child.disconnect()
      return a.exited()
    }),
  )
  rmSync(root, { recursive: true, force: true })
  console.log('stopped; data removed')
}
