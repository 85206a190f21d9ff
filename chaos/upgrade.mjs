// A rolling upgrade under load: three agents in processes of their own start on the previous
// build (chaos/previous.mjs: this build with its registry format one lower), with two shards
// of three voters, clients reading, writing and compare-and-setting on every host, and shards
// created and deleted all along (registry writes). One host at a time stops (gracefully), and
// starts again from its data directory on this build. While any host runs the previous build,
// the cluster must go on writing the previous registry format; once all run this build, the
// registry leader must move it to the new one, and the load goes on in it. Then the history
// goes through the chaos checker (linearizable, no acknowledged write lost, replicas alike),
// and one host is started on the previous build again: it must refuse, naming the format.
// The last line printed is one JSON summary; the exit code is 0 only if all of it holds.
//
//   node chaos/upgrade.mjs            (about a minute; UPGRADE_SEED picks the clients' seed)
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  AGENT,
  buildChecker,
  createShards,
  exitWith,
  judge,
  sleep,
  startCluster,
  stopAll,
} from './cluster.mjs'
import { History } from './history.mjs'
import { previousBuild } from './previous.mjs'

const SEED = Number(process.env.UPGRADE_SEED ?? 1)
const CLUSTER = 'upgrade'
const KEYS = Array.from({ length: 12 }, (_, i) => `k${i}`)
const CLIENTS = { perHost: 2, seed: SEED, timeoutMs: 2000 }
// Snapshots every 200 entries, so that hosts save and recover them across the upgrade.
const fast = { host: { tickMs: 20, snapshotEntries: 200 }, reconcileMs: 300, timeoutMs: 2000 }
/** How long the load runs between steps, in ms. */
const STEP_MS = 3000

const log = (msg) => process.stderr.write(`upgrade: ${msg}\n`)

/** versions is the registry format each running host says the cluster writes. */
const versions = (hosts) =>
  Promise.all(hosts.filter((h) => h.up).map((h) => h.call('registryVersion')))

/**
 * lead moves shard 0's leadership to host `h` and tells whether it leads within 5 s: a
 * registry leader on this build, beside hosts on the previous one, is where the rule is put
 * to the test (it is the one that would move the cluster on).
 */
async function lead(h) {
  await h.call('transfer', { shardId: 0, hostId: h.hostId }).catch(() => {})
  for (let i = 0; i < 25; i++) {
    if ((await h.call('leaderOf', { shardId: 0 }).catch(() => ({}))).leads) return true
    await sleep(200)
  }
  return false
}

/** settled polls until every host says the cluster writes `want` (up to 20 s). */
async function settled(hosts, want) {
  for (let i = 0; i < 100; i++) {
    if ((await versions(hosts)).every((v) => v === want)) return true
    await sleep(200)
  }
  return false
}

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'zongzi-upgrade-'))
  const checker = buildChecker(root)
  const { script, previous, current } = previousBuild(root)
  const history = new History()
  const failures = []
  const seen = []
  /** How often a host on this build led the registry while another ran the previous build. */
  let newLeader = 0
  const registry = { churned: 0, churn_failed: 0 }
  let hosts = []
  try {
    const started = await startCluster({
      root,
      cluster: CLUSTER,
      count: 3,
      options: fast,
      history,
      script,
    })
    hosts = started.hosts
    const { peers } = started
    const { ids, shardOf } = await createShards(hosts[0], 2, KEYS)
    log(`3 hosts on registry format ${previous}, shards ${ids.join(', ')}`)
    for (const h of hosts) await h.run(shardOf, CLIENTS)
    let churning = true
    const churn = (async () => {
      for (let n = 0; churning; n++) {
        const h = hosts.filter((x) => x.up)[n % 3]
        const ok = await h
          ?.call('churn', { name: `churn-${n}` })
          .then(() => true)
          .catch(() => false)
        registry[ok ? 'churned' : 'churn_failed']++
        await sleep(500)
      }
    })()
    await sleep(STEP_MS)
    seen.push(await versions(hosts))
    for (const h of hosts) {
      log(`upgrade host ${h.i}`)
      await h.call('halt')
      await h.call('stop')
      h.kill()
      h.script = AGENT
      await h.start(CLUSTER, peers, history)
      await h.run(shardOf, CLIENTS)
      const last = h === hosts.at(-1)
      if (!last && (await lead(h))) newLeader++
      await sleep(STEP_MS)
      const now = await versions(hosts)
      seen.push(now)
      // A host on the previous build reads only the previous format: the cluster keeps it.
      if (!last && now.some((v) => v !== previous))
        failures.push(`with a host on the previous build, the cluster wrote ${now}`)
    }
    if (!(await settled(hosts, current)))
      failures.push(`the cluster did not move to registry format ${current}`)
    seen.push(await versions(hosts))
    log(`every host on this build; the cluster writes format ${seen.at(-1)}`)
    await sleep(STEP_MS)
    churning = false
    await churn
    const verdict = await judge({ hosts, reader: hosts[0], history, shardOf, checker, root })
    const { pass: checked, ...rest } = verdict
    // Going back after the move: the previous build meets a registry format it does not read.
    const back = hosts.at(-1)
    await back.call('stop')
    back.kill()
    back.script = script
    const refused = await back.start(CLUSTER, peers, history).then(
      () => 'started',
      (e) => `${e.code}: ${e.message}`,
    )
    log(`a host on the previous build after the move: ${refused}`)
    // The registry's replica stops at the snapshot or the command it cannot read, and the
    // start fails with that refusal, naming the format and the version.
    const named =
      /registry (command|snapshot) version 2 is not supported|moved to registry format 2, and/
    if (!/^ERR_UNSUPPORTED_VERSION: /.test(refused) || !named.test(refused))
      failures.push(`a host on the previous build was not refused for the format: ${refused}`)
    if (registry.churned === 0) failures.push('no registry write went through')
    if (newLeader === 0) failures.push('no host on this build led the registry in a mixed cluster')
    const pass = checked && failures.length === 0
    const summary = {
      hosts: 3,
      shards: ids.length,
      keys: KEYS.length,
      seed: SEED,
      from_format: previous,
      to_format: current,
      formats_seen: seen,
      mixed_cluster_led_by_new_build: newLeader,
      ...rest,
      downgrade: refused.slice(0, 200),
      ...registry,
      failures,
    }
    if (!pass) log(`kept in ${root}`)
    console.log(JSON.stringify(summary))
    return { pass, root }
  } finally {
    await stopAll(hosts)
  }
}

await exitWith(main)
