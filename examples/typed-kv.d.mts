import type { Entry, StateMachine } from '../dist/index.js'
import type { Readable, Writable } from 'node:stream'
/** KvCommand is what a Kv applies. */
export type KvCommand = { op: 'set'; key: string; value: string } | { op: 'delete'; key: string }
export declare class Kv
  implements StateMachine<KvCommand, string | undefined, string, string | undefined>
{
  map: Map<string, string>
  update(entries: Entry<KvCommand>[]): Array<string | undefined>
  query(key: string): string | undefined
  watch(key: string, signal?: AbortSignal): AsyncIterable<string | undefined>
  saveSnapshot(out: Writable): Promise<void>
  recoverFromSnapshot(input: Readable): Promise<void>
}
