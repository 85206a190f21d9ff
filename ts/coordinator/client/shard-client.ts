// ShardClient: reads and writes of one shard from any host, routed to the nearest replica.
import { checkBytes } from '../../binding/boundary'
import { asRead, invalid, ZongziError } from '../../binding/errors'
import type { SessionRef } from '../../binding/proposals'
import type { ClientCallOptions, ClientContext, ShardClientOptions } from './client-context'
import { HostHealth, isHostFailure } from './health'
import {
  type Attempt,
  firstOf,
  hedge,
  readMayRetry,
  retry,
  sessionMayRetry,
  settleBy,
  writeMayRetry,
} from './retry'
import { resumable } from './feeds'
import { ClientSession, inSession } from './session'
import { ShardTargets, type Target } from './targets'

/**
 * ShardClient sends commands and queries to one shard. Each call goes to this host's replica
 * when it has an active one, otherwise to another host that has, and moves on to the next
 * one when a host cannot serve it. Results are the state machine's; consensus failures
 * reject with a ZongziError.
 */
export class ShardClient {
  readonly #agent: ClientContext
  readonly #ownHealth = new HostHealth()
  readonly #targets: ShardTargets
  #session: ClientSession | undefined
  /** The client whose session this one shares (see `share`). */
  #of: ShardClient | undefined
  /** How many open clients share this one's session. */
  #holders = 0
  #closed = false

  /** Agents make clients (`agent.client(id)`); the context is the agent's. */
  constructor(
    agent: ClientContext,
    readonly shardId: number,
    readonly options: ShardClientOptions = {},
  ) {
    this.#agent = agent
    this.#targets = new ShardTargets(agent, shardId)
    if (options.session !== false) {
      this.#session = new ClientSession((clientId, timeoutMs) =>
        this.#sessionCall(clientId, true, timeoutMs),
      )
    }
  }

  /** closed tells whether `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * share returns another client of this shard, with these options, that writes in this
   * client's session: each closes on its own, and the session is unregistered once every
   * client that shares it has closed (see `close`). The agent hands each caller of `client()`
   * a share of one client per shard and options.
   */
  share(): ShardClient {
    this.#checkOpen()
    const of = this.#of ?? this // a share of a share shares the first client's session
    const c = new ShardClient(this.#agent, this.shardId, this.options)
    c.#session = of.#session
    c.#of = of
    of.#holders++
    return c
  }

  /**
   * close ends this client: its calls are refused from then on (ERR_INVALID_ARGUMENT), and
   * its session is unregistered from the shard (so it takes no room in the shard's session
   * table), unless other clients share it (see `share`): then the last of them to close
   * unregisters it. The agent's `client()` then makes a new one. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const of = this.#of
    if (of) {
      of.#holders--
      if (of.#holders === 0) await of.close()
      return
    }
    const clientId = this.#session?.clientId ?? 0
    this.#session?.expire()
    if (clientId === 0) return
    await this.#sessionCall(clientId, false).catch(() => {
      // The shard evicts a session it no longer hears of in time; nothing is left to do.
    })
  }

  /**
   * #sessionCall registers (`on`) or unregisters client `clientId`'s session with the shard;
   * either may be sent again, since doing it twice changes nothing.
   */
  #sessionCall(clientId: number, on: boolean, timeoutMs?: number): Promise<void> {
    const call = (t: Target, ms: number, signal?: AbortSignal): Promise<void> => {
      if (!t.local) {
        const o = { timeoutMs: ms, signal }
        return this.#agent.bus.session(t.address, this.shardId, clientId, on, o)
      }
      const host = this.#agent.host
      return on
        ? host.registerSession(this.shardId, clientId, { timeoutMs: ms })
        : host.unregisterSession(this.shardId, clientId, { timeoutMs: ms })
    }
    return this.#route(true, { timeoutMs }, call, sessionMayRetry)
  }

  #checkOpen(): void {
    if (this.#closed) throw invalid(`this client of shard ${this.shardId} is closed`)
  }

  /**
   * propose proposes `command` and resolves with the state machine's result once applied. In a
   * session (the default) it applies once however often it is sent; see `session` in the
   * options.
   */
  async propose(
    command: Uint8Array,
    o: ClientCallOptions = {},
  ): Promise<{ value: number; data: Buffer }> {
    this.#checkOpen()
    bytes(command, 'command')
    const session = this.#session
    if (!session)
      return this.#route(true, o, (t, ms, signal) => this.#propose(t, command, ms, signal))
    const timeoutMs = o.timeoutMs ?? this.#agent.timeoutMs
    if (!(timeoutMs > 0)) throw invalid('timeoutMs must be positive')
    return inSession(session, timeoutMs, (ref, left, attempted) =>
      this.#route(
        true,
        { ...o, timeoutMs: left },
        (t, ms, signal) => this.#propose(t, command, ms, signal, ref).catch(attempted),
        sessionMayRetry,
      ),
    )
  }

  /** #propose sends one attempt of a write to `t`. */
  #propose(
    t: Target,
    command: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
    session?: SessionRef,
  ): Promise<{ value: number; data: Buffer }> {
    return t.local
      ? this.#agent.host.propose(this.shardId, command, { timeoutMs, session })
      : this.#agent.bus.propose(t.address, this.shardId, command, { timeoutMs, signal, session })
  }

  /** commit proposes `command` and resolves with its log index once committed. */
  commit(command: Uint8Array, o: ClientCallOptions = {}): Promise<number> {
    this.#checkOpen()
    bytes(command, 'command')
    return this.#route(true, o, (t, timeoutMs, signal) =>
      t.local
        ? this.#agent.host.commit(this.shardId, command, { timeoutMs })
        : this.#agent.bus.commit(t.address, this.shardId, command, { timeoutMs, signal }),
    )
  }

  /**
   * read queries the shard: linearizable unless `stale` is set. It resolves with the state
   * machine's answer as a Buffer, or undefined when it answered "absent".
   */
  read(
    query: Uint8Array,
    o: ClientCallOptions & { stale?: boolean } = {},
  ): Promise<Buffer | undefined> {
    this.#checkOpen()
    bytes(query, 'query')
    const stale = !!o.stale
    return this.#route(false, o, (t, timeoutMs, signal) =>
      t.local
        ? this.#agent.host.read(this.shardId, query, { timeoutMs, stale })
        : this.#agent.bus.read(t.address, this.shardId, query, stale, { timeoutMs, signal }),
    )
  }

  /** index resolves with a read index once the serving replica has applied up to it. */
  index(o: ClientCallOptions = {}): Promise<number> {
    this.#checkOpen()
    return this.#route(false, o, (t, timeoutMs, signal) =>
      t.local
        ? this.#agent.host.readIndex(this.shardId, { timeoutMs })
        : this.#agent.bus.index(t.address, this.shardId, { timeoutMs, signal }),
    )
  }

  /** leader returns the shard's leader replica id and term as the registry last recorded. */
  leader(): { replicaId: number; term: number } {
    const sh = this.#agent.registry().shards.get(this.shardId)
    if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${this.shardId} not found`)
    return { replicaId: sh.leader, term: sh.term }
  }

  /**
   * watch yields what the state machine's `watch` yields for `query`, as Buffers, until
   * aborted. When another host serves it and stops (it stopped, or its connection broke or
   * went silent past the bus's keepalive), the watch resumes on another replica once that one
   * has applied everything the shard had committed: it may repeat the last answer, and never
   * goes back to an older state. It fails when no replica serves it within the timeout.
   */
  async *watch(query: Uint8Array, o: { signal?: AbortSignal } = {}): AsyncIterable<Buffer> {
    this.#checkOpen()
    bytes(query, 'query')
    const unavailable = () =>
      new ZongziError('ERR_UNAVAILABLE', `no active replica of shard ${this.shardId}`)
    yield* resumable(
      {
        first: async () => {
          const t = (await this.#known(false))[0]
          if (!t) throw unavailable()
          return t
        },
        resume: () =>
          this.#route(false, { signal: o.signal }, async (t, timeoutMs, signal) => {
            if (t.local) await this.#agent.host.readIndex(this.shardId, { timeoutMs })
            else await this.#agent.bus.index(t.address, this.shardId, { timeoutMs, signal })
            return t
          }),
        open: (t) => this.#watch(t, query, o.signal),
        failed: (t) => {
          if (!t.local) this.#health.failure(t.address)
        },
      },
      o.signal,
    )
  }

  async *#watch(t: Target, query: Uint8Array, signal?: AbortSignal): AsyncIterable<Buffer> {
    if (!t.local) return yield* this.#agent.bus.watch(t.address, this.shardId, query, signal)
    const sm = this.#agent.host.stateMachine(this.shardId)
    if (!sm?.watch) throw invalid(`the state machine of shard ${this.shardId} has no watch`)
    for await (const b of sm.watch(checkBytes(query, 'query'), signal)) yield bytesOf(b)
  }

  /** stream connects `input` to the state machine's `stream` and yields its output as Buffers. */
  async *stream(
    input: AsyncIterable<Uint8Array>,
    o: { signal?: AbortSignal } = {},
  ): AsyncIterable<Buffer> {
    this.#checkOpen()
    const t = (await this.#known(false))[0]
    if (!t) throw new ZongziError('ERR_UNAVAILABLE', `no active replica of shard ${this.shardId}`)
    if (t.local) {
      const sm = this.#agent.host.stateMachine(this.shardId)
      if (!sm?.stream) throw invalid(`the state machine of shard ${this.shardId} has no stream`)
      for await (const b of sm.stream(input, o.signal)) yield bytesOf(b)
    } else {
      yield* this.#agent.bus.stream(t.address, this.shardId, input, o.signal)
    }
  }

  /** #known is the shard's targets for a call, once the registry knows it (ShardTargets). */
  #known(write: boolean, timeoutMs = this.#agent.timeoutMs): Target[] | Promise<Target[]> {
    const leaderFirst = write && !!this.options.writeToLeader
    return this.#targets.known(leaderFirst, this.#available, timeoutMs)
  }

  /** #available tells whether a host's circuit lets a call through now. */
  readonly #available = (address: string) => this.#health.available(address)

  /**
   * #route sends a call to the hosts that can serve it and goes round again until the
   * deadline. A write goes to one host at a time and moves on only after an error that proves
   * it was not proposed; a read moves on after any failure of the serving host, and is also
   * sent to the next host when the one it waits for stays silent past the hedging delay
   * (see retry.ts). A read's failure is marked as a read's.
   */
  #route<T>(
    write: boolean,
    o: ClientCallOptions,
    f: (t: Target, timeoutMs: number, signal?: AbortSignal) => Promise<T>,
    mayRetry?: (e: unknown) => boolean,
  ): Promise<T> {
    const p = this.#send(write, o, f, mayRetry)
    return write ? p : p.catch(throwAsRead)
  }

  async #send<T>(
    write: boolean,
    o: ClientCallOptions,
    f: (t: Target, timeoutMs: number, signal?: AbortSignal) => Promise<T>,
    mayRetry?: (e: unknown) => boolean,
  ): Promise<T> {
    const timeoutMs = o.timeoutMs ?? this.#agent.timeoutMs
    if (!(timeoutMs > 0)) throw invalid('timeoutMs must be positive')
    const deadline = Date.now() + timeoutMs
    const retryable = mayRetry ?? (write ? (e: unknown) => writeMayRetry(e) : readMayRetry)
    const none = () =>
      new ZongziError('ERR_UNAVAILABLE', `no active replica of shard ${this.shardId}`)
    const health = this.#health
    // Made only when thrown: an error's stack costs more than the rest of a call's routing.
    let last: unknown
    let fatal: unknown // an error that ends the call as it is
    let expired = false
    const one = async (t: Target, hedged?: Attempt): Promise<T> => {
      if (o.signal?.aborted) {
        fatal = new ZongziError('ERR_ABORTED', 'aborted')
        throw fatal
      }
      const left = deadline - Date.now()
      if (left <= 0) {
        expired = true
        throw last ?? none()
      }
      // A call to this host's replica cannot be cancelled: it goes on when a hedged attempt
      // elsewhere wins, and its outcome is ignored. A call over the bus is cancelled then.
      const signal =
        t.local || !hedged
          ? o.signal
          : o.signal
            ? AbortSignal.any([o.signal, hedged.signal])
            : hedged.signal
      const started = Date.now()
      try {
        const v = await settleBy(f(t, left, signal), left, signal)
        // This host's replica counts too: when it is slow (a busy event loop, a loaded
        // engine), reads wait longer before they are also sent elsewhere, rather than
        // sending every read to every host.
        if (t.local) health.latency(Date.now() - started)
        else health.success(t.address, Date.now() - started)
        return v
      } catch (e) {
        // An attempt that lost a hedging race says nothing of its own.
        if (hedged?.aborted && !o.signal?.aborted) throw e
        if (!t.local && isHostFailure(e)) health.failure(t.address)
        last = e
        if (!retryable(e)) fatal = e
        throw e
      }
    }
    const goOn = (e: unknown) => e !== fatal && !expired
    const send = (targets: Target[]): Promise<T> => {
      if (write) return firstOf(targets, (t) => one(t), goOn, none)
      return hedge(targets, one, {
        retryable: goOn,
        delayMs: Math.min(health.hedgeDelay(), Math.max(1, deadline - Date.now())),
        none,
        late: (t) => {
          if (!t.local) health.failure(t.address)
        },
      })
    }
    const unknown = (e: unknown): never => {
      fatal = e
      throw e
    }
    // A round answers at once when this host's registry snapshot knows the shard.
    const round = (): Promise<T> => {
      let targets: Target[] | Promise<Target[]>
      try {
        targets = this.#known(write, Math.max(1, deadline - Date.now()))
      } catch (e) {
        fatal = e
        return Promise.reject(e)
      }
      return targets instanceof Promise ? targets.then(send, unknown) : send(targets)
    }
    try {
      return await retry(round, { deadline, signal: o.signal, retryable: goOn })
    } catch (e) {
      if (e === fatal) throw e
      // Out of time (or aborted): the last failure says more than a timeout, unless it only
      // said that no replica could be reached.
      throw e instanceof ZongziError && e.code !== 'ERR_UNAVAILABLE'
        ? e
        : new ZongziError('ERR_TIMEOUT', `shard ${this.shardId}: no replica answered in time`, {
            cause: e,
          })
    }
  }

  get #health(): HostHealth {
    return this.#agent.health ?? this.#ownHealth
  }
}

/** bytesOf returns bytes a state machine yielded as a Buffer over the same memory. */
function bytesOf(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** throwAsRead throws a read's failure, marked as a read's. */
function throwAsRead(e: unknown): never {
  throw asRead(e)
}

function bytes(v: unknown, what: string): void {
  if (!(v instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array or Buffer`)
}
