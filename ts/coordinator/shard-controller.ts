// ShardController: on the registry leader, turns each shard's placement into replica records.
import { type Logger, silent } from './logger'
import { place, PlacementError, type Want } from './placement'
import type { Accepted, Command, ShardRecord } from './records'
import type { RegistryState } from './registry-state'

/**
 * ProposeCommand proposes a registry command; it resolves once the registry applied it and
 * rejects with ERR_INVALID_ARGUMENT when the registry refused it.
 */
export type ProposeCommand = (cmd: Command) => Promise<Accepted>

/**
 * ShardController decides which replicas shards have. It runs only on the host that leads
 * shard 0, after registry changes and periodically, one run at a time. It sees the registry
 * as an immutable snapshot and changes the cluster only by proposing registry commands,
 * which host controllers then carry out. A rejection is logged and the next run tries
 * again. Supply your own in `AgentOptions.shardController` to replace the placement rules.
 */
export interface ShardController {
  /** reconcile brings the replicas of shards towards what the controller wants. */
  reconcile(state: RegistryState, propose: ProposeCommand): Promise<void>
}

/** ERROR_TAG is the shard tag where placement errors are recorded. */
export const ERROR_TAG = 'placement:error'

/** DefaultShardController implements the placement grammar of {@link Placement}. */
export class DefaultShardController implements ShardController {
  readonly #log: Logger

  /** The logger receives the failures of single shards, which do not stop the others. */
  constructor(log: Logger = silent) {
    this.#log = log
  }

  async reconcile(s: RegistryState, propose: ProposeCommand): Promise<void> {
    for (const shard of s.shards.values()) {
      if (shard.id === 0 || shard.status === 'deleting') continue
      try {
        await this.#one(propose, s, shard)
      } catch (e) {
        this.#log.warn('placement of a shard failed', { shardId: shard.id, error: String(e) })
      }
    }
  }

  async #one(propose: ProposeCommand, s: RegistryState, shard: ShardRecord): Promise<void> {
    const p = shard.placement ?? {}
    if (!p.members && !p.groups && !p.cover) return
    let wants: Want[]
    try {
      wants = place(s, shard)
    } catch (e) {
      if (!(e instanceof PlacementError)) throw e
      const message = e.message.slice(0, 1000)
      if (shard.tags[ERROR_TAG] !== message) {
        await propose({
          op: 'shard.update',
          id: shard.id,
          tags: { ...shard.tags, [ERROR_TAG]: message },
        })
      }
      return
    }
    if (shard.tags[ERROR_TAG] !== undefined) {
      const { [ERROR_TAG]: _, ...rest } = shard.tags
      await propose({ op: 'shard.update', id: shard.id, tags: rest })
    }
    const current = s.replicasOf(shard.id)
    const byHost = new Map(current.map((r) => [r.hostId, r]))
    const missing = wants.filter((w) => !byHost.has(w.hostId))
    if (current.length === 0 && missing.some((w) => !w.nonVoting)) {
      // A new shard: its voters bootstrap it together; the rest join afterwards.
      await propose({
        op: 'replicas.create',
        shardId: shard.id,
        items: missing.map((w) => ({
          hostId: w.hostId,
          nonVoting: w.nonVoting,
          initial: !w.nonVoting,
        })),
      })
      return
    }
    if (current.length > 0 && missing.length > 0) {
      await propose({
        op: 'replicas.create',
        shardId: shard.id,
        items: missing.map((w) => ({ hostId: w.hostId, nonVoting: w.nonVoting, initial: false })),
      })
    }
    for (const w of wants) {
      const r = byHost.get(w.hostId)
      if (r?.nonVoting && !w.nonVoting && r.status === 'active') {
        await propose({ op: 'replica.update', id: r.id, nonVoting: false })
      }
    }
    // Non-voting replicas no longer wanted go; voters stay until a person decides.
    const wanted = new Set(wants.map((w) => w.hostId))
    for (const r of current) {
      if (r.nonVoting && !wanted.has(r.hostId) && r.status === 'active') {
        await propose({ op: 'replica.update', id: r.id, status: 'deleting' })
      }
    }
  }
}
