// `zongzi agent --config FILE`: an agent run from a config file joins a running cluster,
// serves its bus and the state machine type its module names, and stops on SIGTERM; config
// files it cannot use are bad arguments.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { Running, zongzi } from './fixtures/zongzi-bin'
import { TempDirs, waitUntil } from './helpers'

const KV = join(__dirname, '..', 'examples', 'kv.mjs')
/** TYPED is a module whose default export is a ShardType named typed. */
const TYPED = [
  `import { shardType } from ${JSON.stringify(join(__dirname, '..', 'dist', 'index.mjs'))}`,
  `import { KvStateMachine } from ${JSON.stringify(KV)}`,
  "export default shardType('typed', () => new KvStateMachine())",
].join('\n')

describe('zongzi agent', () => {
  const dirs = new TempDirs('zongzi-cli-agent-')
  const running: Running[] = []
  let c: OpsCluster
  beforeAll(async () => {
    c = await opsCluster('cliagent')
  }, 60_000)
  afterAll(async () => {
    for (const r of running) r.kill()
    await c?.stop()
    dirs.removeAll()
  })

  /** config writes a config file (and a state machine module) in a new directory. */
  const config = (name: string, body: string, module?: string) => {
    const dir = dirs.make()
    if (module !== undefined) writeFileSync(join(dir, 'kv.mjs'), module)
    writeFileSync(join(dir, name), body)
    return join(dir, name)
  }

  it('runs an agent that joins the cluster, serves, and stops on SIGTERM', async () => {
    const file = config(
      'agent.json',
      JSON.stringify({
        cluster: 'cliagent',
        peers: c.peers,
        dataDir: './data',
        joinToken: await c.agents[0].createJoinToken(),
        tags: { zone: 'cli' },
        host: { tickMs: 20 },
        stateMachines: { kv: './kv.mjs' },
        logLevel: 'warn',
      }),
      // The module's default export is the state machine's class.
      `export { KvStateMachine as default } from ${JSON.stringify(KV)}\n`,
    )
    const agent = Running.start(['agent', '--config', file])
    running.push(agent)
    const ready = /^host (\S+) of cluster cliagent is ready: bus (\S+), raft (\S+)$/m
    const [, hostId, bus] = await waitUntil(() => ready.exec(agent.out), {
      what: `the agent ready (it printed ${agent.out}${agent.err})`,
    })
    // It is a member with the type its module names, and answers on its bus.
    const me = await waitUntil(() =>
      c.agents[0].stateLocal(
        (s) => s.hosts.get(hostId)?.status === 'active' && s.hosts.get(hostId),
      ),
    )
    expect(me).toMatchObject({ apiAddress: bus, tags: { zone: 'cli' }, shardTypes: ['kv'] })
    const hosts = await zongzi(['hosts', '--api', bus, '--cluster', 'cliagent'])
    expect(hosts.code).toBe(0)
    expect(hosts.out).toContain(hostId.slice(0, 8))
    // A shard placed on it runs there.
    const sh = await c.agents[0].createShard('kv', {
      name: 'on-cli',
      placement: { members: { count: 1, tags: { zone: 'cli' } } },
    })
    await c.agents[0].waitForShard(sh.id)
    const rs = c.agents[0].stateLocal((s) => s.replicasOf(sh.id))
    expect(rs.map((r) => [r.hostId, r.status])).toEqual([[hostId, 'active']])

    agent.child.kill('SIGTERM')
    expect(await agent.exited).toBe(0)
    expect(agent.out).toMatch(/SIGTERM: stopping\nstopped\n$/)
  }, 60_000)

  it('takes a module as config, a factory and a ShardType as state machines', async () => {
    const dir = dirs.make()
    writeFileSync(
      join(dir, 'factory.mjs'),
      [
        `import { KvStateMachine } from ${JSON.stringify(KV)}`,
        'export default () => new KvStateMachine()',
      ].join('\n'),
    )
    writeFileSync(join(dir, 'typed.mjs'), TYPED)
    const file = join(dir, 'agent.mjs')
    const stateMachines = { kv: './factory.mjs', typed: './typed.mjs' }
    const body = { cluster: 'solo', peers: [], singleHost: true, dataDir: './data', stateMachines }
    writeFileSync(file, `export default ${JSON.stringify(body)}\n`)
    const agent = Running.start(['agent', '--config', file])
    running.push(agent)
    const ready = /is ready: bus (\S+),/
    const [, bus] = await waitUntil(() => ready.exec(agent.out), { what: 'the agent ready' })
    const hosts = await zongzi(['hosts', '--json', '--api', bus, '--cluster', 'solo'])
    expect(JSON.parse(hosts.out)[0].shardTypes).toEqual(expect.arrayContaining(['kv', 'typed']))
    agent.child.kill('SIGINT')
    expect(await agent.exited).toBe(0)
  }, 60_000)

  it('stops on SIGTERM while it is still trying to join', async () => {
    const file = config(
      'agent.json',
      JSON.stringify({
        cluster: 'lost',
        peers: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'],
        dataDir: './data',
        joinToken: 'nobody made it',
        logLevel: 'debug',
      }),
    )
    const agent = Running.start(['agent', '--config', file])
    running.push(agent)
    await waitUntil(() => agent.err.includes('join attempt'), { what: 'a join attempt' })
    agent.child.kill('SIGTERM')
    expect(await agent.exited).toBe(0)
    expect(agent.out).toBe('SIGTERM: stopping\nstopped\n')
  }, 60_000)

  it('says what is wrong with a config it cannot use, and exits 2', async () => {
    const sm = (module: string) => config('a.json', JSON.stringify(good), module)
    const good = { cluster: 'x', peers: [], singleHost: true, dataDir: 'd' }
    const cases: Array<[string, RegExp]> = [
      [join(dirs.make(), 'none.json'), /cannot read config .*none\.json/],
      [config('a.json', '{ "cluster": '), /is not JSON/],
      [config('a.json', '[]'), /must be an object/],
      [config('a.json', JSON.stringify({ ...good, cluster: undefined })), /"cluster"/],
      [config('a.json', JSON.stringify({ ...good, peers: 'a' })), /"peers"/],
      [config('a.json', JSON.stringify({ ...good, dataDir: 1 })), /"dataDir"/],
      [config('a.json', JSON.stringify({ ...good, singleHost: false })), /peers must list/],
      [config('a.json', JSON.stringify({ ...good, logLevel: 'loud' })), /"logLevel"/],
      [config('a.json', JSON.stringify({ ...good, tls: { ca: 'ca.pem' } })), /"tls" needs/],
      [config('a.mjs', 'export default 1\n'), /must be an object/],
      [config('a.mjs', 'throw new Error("boom")\n'), /cannot load config .*boom/],
      [
        config('a.json', JSON.stringify({ ...good, stateMachines: { kv: './none.mjs' } })),
        /cannot load the state machine module of kv/,
      ],
    ]
    const noDefault = sm('export const x = 1\n')
    writeFileSync(noDefault, JSON.stringify({ ...good, stateMachines: { kv: './kv.mjs' } }))
    cases.push([noDefault, /must export a state machine factory, a class or a ShardType/])
    const renamed = config('a.json', JSON.stringify({ ...good, stateMachines: { kv: './t.mjs' } }))
    writeFileSync(join(renamed, '..', 't.mjs'), TYPED)
    cases.push([renamed, /exports ShardType typed, not "kv"/])
    for (const [file, why] of cases) {
      const r = await zongzi(['agent', '--config', file])
      expect([r.code, r.err], file).toEqual([2, expect.stringMatching(why)])
      expect(r.err).toMatch(/^zongzi: /)
    }
  }, 60_000)

  it('refuses a config with a key it does not know, naming it and the known ones', async () => {
    const good = { cluster: 'x', peers: [], singleHost: true, dataDir: 'd' }
    const tls = { ca: 'ca.pem', cert: 'host.pem', key: 'host.key' }
    const cases: Array<[object, string, RegExp]> = [
      [
        { ...good, peer: [] },
        'key "peer"',
        /the known keys: cluster, peers, .*dataDir, apiAddress/,
      ],
      [{ ...good, apiAdress: 'a:1', tagz: {} }, 'keys "apiAdress", "tagz"', /known keys: c/],
      [
        { ...good, tls: { ...tls, crt: 'x' } },
        'key "tls.crt"',
        /known keys of tls: ca, cert, key\)/,
      ],
      [{ ...good, host: { tickMS: 20 } }, 'key "host.tickMS"', /of host: .*tickMs/],
      [{ ...good, host: { tls: { ...tls, kye: 'k' } } }, 'key "host.tls.kye"', /of host\.tls: ca/],
      [{ ...good, health: { failure: 3 } }, 'key "health.failure"', /of health: failures/],
      [{ ...good, liveness: { downMS: 1 } }, 'key "liveness.downMS"', /suspectMs, downMs\)/],
    ]
    for (const [body, named, known] of cases) {
      const r = await zongzi(['agent', '--config', config('a.json', JSON.stringify(body))])
      expect(r.code, named).toBe(2)
      expect(r.err).toMatch(new RegExp(`^zongzi: config .*a\\.json: unknown ${named} \\(`))
      expect(r.err).toMatch(known)
    }
    // In a module's config too, and with --json as an error object.
    const file = config('a.mjs', `export default ${JSON.stringify({ ...good, peer: [] })}\n`)
    const r = await zongzi(['agent', '--config', file, '--json'])
    expect(r.code).toBe(2)
    expect(JSON.parse(r.err)).toEqual({
      action: 'agent',
      ok: false,
      code: 'ERR_CONFIG',
      message: expect.stringMatching(/unknown key "peer" \(the known keys: cluster, peers/),
      exitCode: 2,
    })
    // Maps of names take any key.
    const any = { ...good, tags: { anything: 'x' }, stateMachines: {}, logLevel: 'silent' }
    const ok = Running.start(['agent', '--config', config('a.json', JSON.stringify(any))])
    running.push(ok)
    await waitUntil(() => /is ready/.test(ok.out), { what: `the agent ready (${ok.err})` })
    ok.child.kill('SIGTERM')
    expect(await ok.exited).toBe(0)
  }, 60_000)
})
