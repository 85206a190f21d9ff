import type { Entry, Result, StateMachine } from '../dist/index.js'
import type { Readable, Writable } from 'node:stream'
export declare const set: (key: string, value: string, id?: string) => Buffer
export declare class Dedup {
  constructor(size?: number)
  check(id: string | undefined): Result | undefined
  remember(id: string | undefined, result: Result): void
}
export declare class KvStateMachine implements StateMachine {
  map: Map<string, string>
  update(entries: Entry[]): Result[]
  query(q: Uint8Array): Uint8Array
  watch(q: Uint8Array, signal?: AbortSignal): AsyncIterable<Uint8Array>
  stream(input: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>
  saveSnapshot(out: Writable): Promise<void>
  recoverFromSnapshot(input: Readable): Promise<void>
}
