// The demo: three agents as separate processes on loopback, with data in temporary
// directories and free ports; a KV state machine; shards with placement; writes and reads
// through clients on every host; the topology and the achieved rate; a clean shutdown. Both
// channels between agents, the bus and the Raft transport, run mutual TLS with certificates
// the demo makes for itself.
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
} from '../dist/index.mjs'

const SECONDS = Number(process.env.DEMO_SECONDS ?? 5)
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

const root = mkdtempSync(join(tmpdir(), 'zongzi-demo-'))
const peers = []
for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
const zones = ['a', 'b', 'c']
const ca = createCertificateAuthority()
const agents = peers.map((api, i) => {
  const tls = writeHostFiles(join(root, `tls${i}`), ca, createHostCertificate(ca, ['127.0.0.1']))
  const child = fork(new URL('./demo-agent.mjs', import.meta.url).pathname, [
    'demo',
    JSON.stringify(peers),
    join(root, `host${i}`),
    api,
    zones[i],
    JSON.stringify(tls),
  ])
  const waiting = new Map()
  let next = 1
  child.on('message', (m) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok) w.resolve(m.value)
    else w.reject(new Error(`agent ${i}: ${m.value}`))
  })
  const call = (op, args = {}) =>
    new Promise((resolve, reject) => {
      const id = next++
      waiting.set(id, { resolve, reject })
      child.send({ id, op, ...args })
    })
  return { child, call }
})

try {
  const t0 = Date.now()
  const ids = await Promise.all(agents.map((a) => a.call('start')))
  console.log(
    `3 agents started in ${((Date.now() - t0) / 1000).toFixed(1)}s (peers ${peers.join(', ')})`,
  )
  console.log('bus and Raft transport over mutual TLS, certificates of a CA made for the demo')
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
} finally {
  await Promise.allSettled(agents.map((a) => a.call('stop')))
  await Promise.all(
    agents.map((a) => {
      a.child.disconnect()
      return new Promise((r) => (a.child.exitCode !== null ? r() : a.child.once('exit', r)))
    }),
  )
  rmSync(root, { recursive: true, force: true })
  console.log('stopped; data removed')
}
