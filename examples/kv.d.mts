import type { Entry, ApplyResult, StateMachine } from '../dist/index.js'
import type { Readable, Writable } from 'node:stream'
export declare const set: (key: string, value: string) => Buffer
export declare class KvStateMachine implements StateMachine {
  map: Map<string, string>
  update(entries: Entry[]): ApplyResult[]
  query(q: Uint8Array): Uint8Array
  watch(q: Uint8Array, signal?: AbortSignal): AsyncIterable<Uint8Array>
  stream(input: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>
  saveSnapshot(out: Writable): Promise<void>
  recoverFromSnapshot(input: Readable): Promise<void>
}
