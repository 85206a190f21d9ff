// ShardController: on the registry leader, turns each shard's placement into replica records.
import type { Agent } from './agent'
import { place, PlacementError } from './placement'
import type { ShardRecord } from './records'
import type { RegistryState } from './registry-state'

/**
 * ShardController decides which replicas shards have. It runs only on the host that leads
 * shard 0, after registry changes and periodically; it changes the cluster only by proposing
 * registry commands (`agent.propose`), which host controllers then carry out. Supply your own
 * in `AgentOptions.shardController` to replace the placement rules.
 */
export interface ShardController {
  reconcile(agent: Agent, state: RegistryState): Promise<void>
}

/** ERROR_TAG is the shard tag where placement errors are recorded. */
export const ERROR_TAG = 'placement:error'

/** DefaultShardController implements the placement grammar of {@link Placement}. */
export class DefaultShardController implements ShardController {
  async reconcile(agent: Agent, s: RegistryState): Promise<void> {
    for (const shard of s.shards.values()) {
      if (shard.id === 0 || shard.status === 'deleting') continue
      try {
        await this.#one(agent, s, shard)
      } catch (e) {
        agent.log.warn('placement of a shard failed', { shardId: shard.id, error: String(e) })
      }
    }
  }

  async #one(agent: Agent, s: RegistryState, shard: ShardRecord): Promise<void> {
    const p = shard.placement ?? {}
    if (!p.members && !p.groups && !p.cover) return
    let wants
    try {
      wants = place(s, shard)
    } catch (e) {
      if (!(e instanceof PlacementError)) throw e
      const message = e.message.slice(0, 1000)
      if (shard.tags[ERROR_TAG] !== message) {
        await agent.propose({ op: 'shard.update', id: shard.id, tags: { ...shard.tags, [ERROR_TAG]: message } })
      }
      return
    }
    if (shard.tags[ERROR_TAG] !== undefined) {
      const { [ERROR_TAG]: _, ...rest } = shard.tags
      await agent.propose({ op: 'shard.update', id: shard.id, tags: rest })
    }
    const current = s.replicasOf(shard.id)
    const byHost = new Map(current.map((r) => [r.hostId, r]))
    const missing = wants.filter((w) => !byHost.has(w.hostId))
    if (current.length === 0 && missing.some((w) => !w.nonVoting)) {
      // A new shard: its voters bootstrap it together; the rest join afterwards.
      await agent.propose({
        op: 'replicas.create',
        shardId: shard.id,
        items: missing.map((w) => ({ hostId: w.hostId, nonVoting: w.nonVoting, initial: !w.nonVoting })),
      })
      return
    }
    if (current.length > 0 && missing.length > 0) {
      await agent.propose({
        op: 'replicas.create',
        shardId: shard.id,
        items: missing.map((w) => ({ hostId: w.hostId, nonVoting: w.nonVoting, initial: false })),
      })
    }
    for (const w of wants) {
      const r = byHost.get(w.hostId)
      if (r && r.nonVoting && !w.nonVoting && r.status === 'active') {
        await agent.propose({ op: 'replica.update', id: r.id, nonVoting: false })
      }
    }
    // Non-voting replicas no longer wanted go; voters stay until a person decides.
    const wanted = new Set(wants.map((w) => w.hostId))
    for (const r of current) {
      if (r.nonVoting && !wanted.has(r.hostId) && r.status === 'active') {
        await agent.propose({ op: 'replica.update', id: r.id, status: 'deleting' })
      }
    }
  }
}
