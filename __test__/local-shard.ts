// LocalShard: one replica of a state machine in this process, behind the calls the recipes'
// clients make of a shard (propose, read, watch), for tests of those clients' logic. Entries
// get increasing indexes and apply one at a time, as a shard of one replica would apply them.
import type { StateMachine } from '../ts/index'
import type { ShardCalls } from '../ts/recipes/index'

export class LocalShard implements ShardCalls {
  index = 0

  constructor(readonly sm: StateMachine) {}

  async propose(command: Uint8Array): Promise<{ value: number; data: Buffer }> {
    const [r] = await this.sm.update([{ index: ++this.index, data: Buffer.from(command) }])
    return { value: r.value, data: Buffer.from(r.data ?? []) }
  }

  async read(query: Uint8Array): Promise<Buffer | undefined> {
    const a = await this.sm.query(Buffer.from(query))
    return a === undefined || a === null ? undefined : Buffer.from(a)
  }

  async *watch(query: Uint8Array, o: { signal?: AbortSignal } = {}): AsyncIterable<Buffer> {
    if (!this.sm.watch) throw new Error('no watch')
    for await (const b of this.sm.watch(Buffer.from(query), o.signal)) yield Buffer.from(b)
  }
}
