// The election recipe's state machine: named elections, each with a leader and a queue of
// candidates in the order they campaigned, all under leases that end on the time the leader
// of the shard puts in the log.
import { EventEmitter } from 'node:events'
import type { Readable, Writable } from 'node:stream'

import type { ApplyResult, Entry, StateMachine } from '../../binding/state-machine'
import { LogTime } from '../clock'
import { readLines, writeLines } from '../lines'
import { json } from '../shard'
import {
  type Candidate,
  decodeCommand,
  decodeQuery,
  type ElectionCommand,
  encodeLeader,
  encodeStanding,
  type Leader,
  type Standing,
} from './codec'

/** Race is one election: its leader (with its lease) and the candidates queued behind it. */
interface Race {
  leader?: Leader & { expiresAt: number }
  queue: Candidate[]
}

/**
 * ElectionStateMachine runs elections for services. The first candidate to campaign leads;
 * later ones queue in order and the first live one takes over when the leader resigns or its
 * lease ends (at the first tick of the leader's clock past it, see LeaderClock). Every
 * candidate keeps its lease alive with `keepalive`. `watch` yields an election's leader each
 * time it changes, for observers.
 */
export class ElectionStateMachine implements StateMachine {
  readonly #races = new Map<string, Race>()
  readonly #time = new LogTime()
  readonly #changes = new EventEmitter().setMaxListeners(0)

  /** update applies campaigns, keepalives, resignations, proclamations and ticks. */
  update(entries: Entry[]): ApplyResult[] {
    return entries.map((e) => {
      let c: ElectionCommand
      try {
        c = decodeCommand(e.data)
      } catch {
        return { value: -1, data: json({ error: 'not an election command' }) }
      }
      if (c.op === 'tick') {
        const now = this.#time.advance(c.now)
        for (const [name, race] of this.#races) {
          race.queue = race.queue.filter((q) => q.expiresAt > now)
          if (race.leader && race.leader.expiresAt <= now) this.#succeed(name, race, e.index)
        }
        return { value: 1 }
      }
      return encodeStanding(this.#apply(c, e.index))
    })
  }

  #apply(c: Exclude<ElectionCommand, { op: 'tick' }>, index: number): Standing {
    const race = this.#races.get(c.election) ?? { queue: [] }
    this.#races.set(c.election, race)
    const expiresAt = 'leaseMs' in c ? this.#time.now + c.leaseMs : 0
    const queued = race.queue.find((q) => q.candidate === c.candidate)
    const leads = race.leader?.candidate === c.candidate
    switch (c.op) {
      case 'campaign':
        if (leads && race.leader) race.leader.expiresAt = expiresAt
        else if (queued) queued.expiresAt = expiresAt
        else if (!race.leader) {
          const leader = { election: c.election, candidate: c.candidate, value: c.value }
          race.leader = { ...leader, term: index, expiresAt }
          this.#changed(c.election, race)
        } else race.queue.push({ candidate: c.candidate, value: c.value, expiresAt })
        break
      case 'keepalive':
        if (leads && race.leader) race.leader.expiresAt = expiresAt
        else if (queued) queued.expiresAt = expiresAt
        break
      case 'resign':
        race.queue = race.queue.filter((q) => q.candidate !== c.candidate)
        if (leads) this.#succeed(c.election, race, index)
        break
      case 'proclaim':
        if (leads && race.leader && race.leader.term === c.term) {
          race.leader.value = c.value
          this.#changed(c.election, race)
        }
        break
    }
    if (!race.leader && race.queue.length === 0) this.#races.delete(c.election)
    return this.#standing(c.candidate, race)
  }

  /** #succeed hands an election to the first live queued candidate, or leaves it empty. */
  #succeed(name: string, race: Race, index: number): void {
    const now = this.#time.now
    race.queue = race.queue.filter((q) => q.expiresAt > now)
    const next = race.queue.shift()
    race.leader = next && {
      election: name,
      candidate: next.candidate,
      value: next.value,
      term: index,
      expiresAt: next.expiresAt,
    }
    if (!race.leader && race.queue.length === 0) this.#races.delete(name)
    this.#changed(name, race)
  }

  #standing(candidate: string, race: Race): Standing {
    const leads = race.leader?.candidate === candidate
    const campaigning = leads || race.queue.some((q) => q.candidate === candidate)
    return { leads, campaigning, leader: race.leader && this.#public(race.leader) }
  }

  #public(l: Leader): Leader {
    return { election: l.election, candidate: l.candidate, value: l.value, term: l.term }
  }

  #changed(name: string, race: Race): void {
    this.#changes.emit(name, race.leader && this.#public(race.leader))
  }

  /** query answers an election's leader, or undefined if it has none. */
  query(q: Buffer): Buffer | undefined {
    const l = this.#races.get(decodeQuery(q).election)?.leader
    return encodeLeader(l && this.#public(l))
  }

  /** watch yields an election's leader now and at every change (empty: no leader). */
  async *watch(q: Uint8Array, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const name = decodeQuery(q).election
    const l = this.#races.get(name)?.leader
    const queue: Array<Leader | undefined> = [l && this.#public(l)]
    let wake: (() => void) | undefined
    const onChange = (leader: Leader | undefined) => {
      queue.push(leader)
      wake?.()
    }
    this.#changes.on(name, onChange)
    signal?.addEventListener('abort', () => wake?.(), { once: true })
    try {
      while (!signal?.aborted) {
        while (queue.length) yield encodeLeader(queue.shift()) ?? Buffer.alloc(0)
        await new Promise<void>((r) => {
          wake = r
        })
      }
    } finally {
      this.#changes.off(name, onChange)
    }
  }

  /** saveSnapshot writes the log time, then one election a line. */
  async saveSnapshot(out: Writable): Promise<void> {
    const rows = [...this.#races].map(([name, r]) => ({ name, leader: r.leader, queue: r.queue }))
    await writeLines(out, [{ time: this.#time.now }, ...structuredClone(rows)])
  }

  /** recoverFromSnapshot replaces the whole state with a snapshot's. */
  async recoverFromSnapshot(input: Readable): Promise<void> {
    const before = [...this.#races.keys()]
    this.#races.clear()
    this.#time.now = 0
    let first = true
    for await (const row of readLines<Race & { name: string; time: number }>(input)) {
      if (first) this.#time.now = row.time
      else this.#races.set(row.name, { leader: row.leader, queue: row.queue })
      first = false
    }
    // Observers see the leaders the snapshot holds.
    for (const name of new Set([...before, ...this.#races.keys()])) {
      this.#changed(name, this.#races.get(name) ?? { queue: [] })
    }
  }
}
