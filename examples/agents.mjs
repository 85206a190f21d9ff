// Three agents in one process on 127.0.0.1, with their data in a temporary directory: a KV
// shard with a replica on every host, a write through one host's client, a read and a watch
// through the others, then a clean stop. Run it with `node examples/agents.mjs` after
// `npm run build` in a clone, or with `node node_modules/zongzi/examples/agents.mjs` where the
// package is installed. On real machines each agent runs in its own process, as in the README.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'zongzi'
import { KvStateMachine, set } from './kv.mjs'

/** freePort asks the OS for a port on 127.0.0.1 that is free now. */
const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

// Each agent's bus address is its entry in the peer list, the same list on every agent.
const peers = []
for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
const root = mkdtempSync(join(tmpdir(), 'zongzi-agents-'))
const agents = peers.map((apiAddress, i) => {
  const agent = new Agent('example', peers, {
    dataDir: join(root, `host${i}`),
    apiAddress,
    tags: { zone: `zone-${i}` },
  })
  agent.register('kv', () => new KvStateMachine())
  return agent
})

try {
  await Promise.all(agents.map((a) => a.start()))
  const users = await agents[0].createShard('kv', {
    name: 'users',
    placement: { members: { count: 3 }, vary: ['zone'] },
  })
  // Calls wait, within their timeout, for the new shard's replicas and leader: no retry loop.
  const client = agents[1].client(users.id)
  const result = await client.propose(set('alice', 'admin'))
  console.log(`applied: ${result.value} key(s)`)
  const alice = await agents[2].client(users.id).read(Buffer.from('alice'))
  console.log(`read: alice is ${Buffer.from(alice)}`)

  for await (const v of agents[0].client(users.id).watch(Buffer.from('alice'))) {
    const value = Buffer.from(v).toString()
    if (value === 'admin') await client.propose(set('alice', 'owner'))
    if (value === 'owner') {
      console.log('watch: alice became owner')
      break // ends the watch
    }
  }
} finally {
  await Promise.all(agents.map((a) => a.stop()))
  rmSync(root, { recursive: true, force: true })
}
