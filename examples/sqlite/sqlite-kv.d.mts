import type { Readable, Writable } from 'node:stream'
import type { ApplyResult, Entry, PersistentStateMachine } from '../../dist/index.js'
export declare const set: (key: string, value: string) => Buffer
export declare const del: (key: string) => Buffer
export declare class SqliteKv implements PersistentStateMachine {
  constructor(file: string)
  readonly file: string
  open(): Promise<number>
  update(entries: Entry[]): ApplyResult[]
  query(q: Buffer): Buffer | undefined
  sync(): Promise<void>
  saveSnapshot(out: Writable): Promise<void>
  recoverFromSnapshot(input: Readable, index: number): Promise<void>
  close(): void
}
