import { describe, expect, it, vi } from 'vitest'

import {
  HOST_CONCURRENCY,
  HostController,
  type HostControllerContext,
} from '../ts/coordinator/control/host-controller'
import { silent } from '../ts/coordinator/control/logger'
import type { Registry } from '../ts/coordinator/registry/registry'
import { fresh, run } from './fixtures/registry'
import { waitUntil } from './helpers'

// The host controller works on many replicas at once: a replica that waits (here, for its
// shard's first election) holds up no other, and a host with many replicas starts them
// together, within a bound.

/**
 * world is h1's host controller over a registry with `shards` more shards of one voter on h1,
 * an engine whose read index barrier on `stuck` waits until released, and counts of what the
 * engine was asked.
 */
function world(shards: number, stuck: number) {
  const r: Registry = fresh()
  for (let i = 0; i < shards; i++) {
    run(r, { op: 'shard.create', name: '', type: 'kv' })
    const shardId = r.state.nextShardId - 1
    run(r, {
      op: 'replicas.create',
      shardId,
      items: [{ hostId: 'h1', nonVoting: false, initial: true }],
    })
  }
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const seen = { starts: 0, startsAtOnce: 0, inStart: 0, statuses: 0 }
  const ctx: HostControllerContext = {
    hostId: 'h1',
    timeoutMs: 1000,
    log: silent,
    host: {
      raftAddress: 'r1',
      storedReplicas: () => [],
      async startReplica() {
        seen.starts++
        seen.inStart++
        seen.startsAtOnce = Math.max(seen.startsAtOnce, seen.inStart)
        await new Promise((resolve) => setTimeout(resolve, 5))
        seen.inStart--
      },
      stopReplica: async () => {},
      removeData: () => {},
      readIndex: async (shardId: number) => {
        if (shardId === stuck) await released
        return 0
      },
      // Another replica leads: nothing to repair here.
      status: async () => {
        seen.statuses++
        return { leaderId: 0, replicaId: 1 }
      },
      promote: async () => {},
      addNonVoting: async () => {},
      removeReplica: async () => {},
    } as unknown as HostControllerContext['host'],
    bus: {} as HostControllerContext['bus'],
    registry: () => r.state,
    catchUp: async () => {},
    factory: () => () => {
      throw new Error('no state machine in this test')
    },
    propose: async (cmd) => {
      run(r, cmd)
      return { ok: true }
    },
  }
  return { r, controller: new HostController(ctx), seen, release }
}

describe('the host controller', () => {
  it('activates other replicas while one waits for its first election', async () => {
    const w = world(3, 1)
    w.controller.kick()
    await waitUntil(() => [2, 3, 4].every((id) => w.controller.runs(id)))
    expect(w.controller.runs(1)).toBe(false)
    w.release()
    await waitUntil(() => w.controller.runs(1))
    await w.controller.stop()
  })

  it('checks an active replica for repair again only once its shard changed', async () => {
    const w = world(2, 0)
    const settled = async () => {
      w.controller.kick()
      await waitUntil(() => [1, 2, 3].every((id) => w.controller.runs(id)))
      // Let the runs the activations asked for finish.
      for (let i = 0; i < 5; i++) {
        w.controller.kick()
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    await settled()
    const before = w.seen.statuses
    expect(before).toBe(3)
    run(w.r, { op: 'shard.update', id: 2, tags: { touched: 'yes' } })
    await settled()
    expect(w.seen.statuses).toBe(before + 1)
    await w.controller.stop()
  })

  it('does nothing on an unchanged registry once a run found nothing to do', async () => {
    const w = world(20, 0)
    await waitUntil(() => {
      w.controller.kick()
      return w.seen.statuses === 21
    })
    // Runs until one finds nothing to do (activations and repairs ended).
    let calls = 0
    const spy = vi.spyOn(w.r.state, 'replicasOn').mockImplementation(function (
      this: unknown,
      hostId: string,
    ) {
      calls++
      return [...w.r.state.replicas.values()].filter((x) => x.hostId === hostId)
    })
    for (let i = 0; i < 3; i++) {
      w.controller.kick()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const settled = calls
    for (let i = 0; i < 5; i++) {
      w.controller.kick()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    // The same state: not one more look at this host's replicas.
    expect(calls).toBe(settled)
    spy.mockRestore()
    await w.controller.stop()
  })

  it('starts many replicas at once, within its bound', async () => {
    const w = world(600, 0)
    w.controller.kick()
    await waitUntil(() => w.seen.starts === 601, { timeoutMs: 30_000 })
    expect(w.seen.startsAtOnce).toBeGreaterThan(1)
    expect(w.seen.startsAtOnce).toBeLessThanOrEqual(HOST_CONCURRENCY)
    await w.controller.stop()
  })
})
