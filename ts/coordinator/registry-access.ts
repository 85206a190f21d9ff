// RegistryAccess: how this host writes to and reads from shard 0 through its own replica.
import { ZongziError } from '../binding/errors'
import type { Host } from '../binding/host'
import type { Accepted, Command, Outcome } from './registry/records'
import type { Registry } from './registry/registry'
import type { RegistryState } from './registry/state'
import { envelope } from './registry/versions'
import { readMayRetry, retry, sessionMayRetry } from './client/retry'
import { ClientSession, inSession } from './client/session'

/**
 * RegistryAccess proposes registry commands and reads the registry through this host's
 * replica of shard 0. Every command it proposes names this host as its proposer (`by`) and is
 * written in the registry format the cluster writes, as this host's replica knows it. Commands
 * go in a client session, so each applies once however often it is retried. Calls fail with
 * ERR_CLOSED once `signal` is aborted.
 */
export class RegistryAccess {
  readonly #host: Pick<Host, 'propose' | 'readIndex' | 'registerSession'>
  readonly #session: ClientSession
  readonly #registry: Registry
  readonly #timeoutMs: number
  readonly #signal: AbortSignal
  readonly #hostId: string

  constructor(
    host: Pick<Host, 'propose' | 'readIndex' | 'registerSession'>,
    registry: Registry,
    timeoutMs: number,
    signal: AbortSignal,
    hostId: string,
  ) {
    this.#host = host
    this.#hostId = hostId
    this.#registry = registry
    this.#timeoutMs = timeoutMs
    this.#signal = signal
    this.#session = new ClientSession((clientId, ms) =>
      retry((left) => this.#host.registerSession(0, clientId, { timeoutMs: Math.min(ms, left) }), {
        ...this.#bounds(ms),
        retryable: sessionMayRetry,
      }),
    )
  }

  /** local is this host's current registry snapshot (no round trip). */
  get local(): RegistryState {
    return this.#registry.state
  }

  /**
   * propose applies a registry command once, retrying while shard 0 has no leader or the
   * outcome of an attempt is unknown (the session makes a retry apply nothing more). A
   * command the registry refuses rejects with ERR_INVALID_ARGUMENT (ERR_UNAUTHENTICATED for
   * a join it refuses). `signal` cancels it (ERR_ABORTED; the command may still apply).
   */
  propose(cmd: Command, timeoutMs = this.#timeoutMs * 4, signal?: AbortSignal): Promise<Accepted> {
    const data = envelope(cmd, this.#hostId, this.#registry.state.version)
    return inSession(this.#session, timeoutMs, (session, total, attempted) =>
      retry(
        async (left) => {
          const timeoutMs = Math.min(this.#timeoutMs, left)
          const r = await this.#host.propose(0, data, { timeoutMs, session }).catch(attempted)
          const out = JSON.parse(r.data.toString()) as Outcome
          if (!out.ok) throw new ZongziError(out.code ?? 'ERR_INVALID_ARGUMENT', out.error)
          return out
        },
        { ...this.#bounds(total, signal), retryable: sessionMayRetry },
      ),
    )
  }

  /** read runs `fn` on a linearizable snapshot of the registry; `signal` cancels it. */
  read<T>(
    fn: (s: RegistryState) => T,
    timeoutMs = this.#timeoutMs,
    signal?: AbortSignal,
  ): Promise<T> {
    return retry(
      async (left) => {
        await this.#host.readIndex(0, { timeoutMs: left })
        return fn(this.#registry.state)
      },
      { ...this.#bounds(timeoutMs, signal), retryable: readMayRetry },
    )
  }

  /** #bounds ends a retry at the deadline, when the agent stops, or when `signal` aborts. */
  #bounds(timeoutMs: number, signal?: AbortSignal) {
    return {
      deadline: Date.now() + timeoutMs,
      signal: signal ? AbortSignal.any([this.#signal, signal]) : this.#signal,
      aborted: () =>
        signal?.aborted
          ? new ZongziError('ERR_ABORTED', 'aborted')
          : new ZongziError('ERR_CLOSED', 'agent stopped'),
    }
  }
}
