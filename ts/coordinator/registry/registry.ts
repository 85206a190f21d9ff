// The registry: the state machine of shard 0. Every host runs a replica of it, so every host
// has the whole topology locally. Commands are JSON; invalid ones get an error result and
// change nothing.
import { EventEmitter } from 'node:events'
import type { Readable, Writable } from 'node:stream'

import { ZongziError } from '../../binding/errors'
import type { ApplyResult, Entry, StateMachine } from '../../binding/state-machine'
import { commandOf } from './changes'
import { runCommand } from './commands'
import { ChangeHistory } from './history'
import type { Outcome } from './records'
import { readSnapshot, writeSnapshot } from './snapshot'
import { opened } from './versions'
import { Invalid, Writer } from './writer'
import { RegistryState } from './state'

/**
 * Registry is shard 0's state machine. It emits `change` with the new state after every
 * batch it applies.
 */
export class Registry extends EventEmitter implements StateMachine {
  #state = RegistryState.empty()
  #refusal: ZongziError | undefined
  /** The changes this replica applied lately, for `agent.changes()`. */
  readonly history = new ChangeHistory()

  /** state is the current immutable snapshot. */
  get state(): RegistryState {
    return this.#state
  }

  /**
   * refusal is the error this replica stopped with on a command or snapshot in a registry
   * format its build does not read (ERR_UNSUPPORTED_VERSION), if it did: the engine reports
   * the replica's failure as the state machine's, and this keeps its code.
   */
  get refusal(): ZongziError | undefined {
    return this.#refusal
  }

  update(entries: Entry[]): ApplyResult[] {
    try {
      const results = entries.map((e) => this.#apply(e.index, e.data))
      this.#announce()
      return results
    } catch (e) {
      throw this.#kept(e)
    }
  }

  /** #kept is `e`, kept as `refusal` if it refuses a version. */
  #kept(e: unknown): unknown {
    if (e instanceof ZongziError && e.code === 'ERR_UNSUPPORTED_VERSION') this.#refusal = e
    return e
  }

  /** #announce tells listeners about the new state; a listener's error never fails the registry. */
  #announce(): void {
    const s = this.#state
    queueMicrotask(() => {
      try {
        this.emit('change', s)
      } catch {
        // A listener's failure is the listener's; the registry carries on.
      }
    })
  }

  query(q: Uint8Array): Uint8Array {
    return Buffer.from(
      JSON.stringify({ index: this.#state.index, query: Buffer.from(q).toString() }),
    )
  }

  #apply(index: number, data: Buffer): ApplyResult {
    let out: Outcome
    const s = this.#state
    const w = new Writer(s, index, true)
    try {
      let cmd: unknown
      try {
        cmd = JSON.parse(data.toString())
      } catch {
        throw new Invalid('command is not JSON')
      }
      // A command of a format this build does not read stops the replica (not Invalid):
      // refusing it here while other replicas apply it would set them apart.
      cmd = opened(cmd)
      out = runCommand(w, cmd)
      this.#state = w.finish()
      if (w.changes.length > 0 || w.access !== s.access) {
        const c = cmd as Record<string, unknown>
        const by = typeof c.by === 'string' ? { by: c.by } : {}
        const command = commandOf(c)
        this.history.push({ index, op: String(c.op), ...by, command, changes: w.changes })
      }
    } catch (e) {
      if (!(e instanceof Invalid)) throw e
      out = e.code ? { ok: false, error: e.message, code: e.code } : { ok: false, error: e.message }
      this.#state = s.at(index)
    }
    return { value: out.ok ? 1 : 0, data: Buffer.from(JSON.stringify(out)) }
  }

  /**
   * saveSnapshot writes the current state as JSON Lines, in chunks (see writeSnapshot): no
   * string of the whole registry is made.
   */
  saveSnapshot(out: Writable): Promise<void> {
    return writeSnapshot(this.#state, out)
  }

  /** recoverFromSnapshot replaces the whole state with the snapshot's, read line by line. */
  async recoverFromSnapshot(input: Readable): Promise<void> {
    this.#state = await readSnapshot(input).catch((e) => Promise.reject(this.#kept(e)))
    this.history.reset(this.#state.index)
    this.#announce()
  }
}
