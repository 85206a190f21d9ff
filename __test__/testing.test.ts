import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'

import type { ApplyResult, Entry, PersistentStateMachine, StateMachine } from '../ts/index'
import { CheckError, checkStateMachine, Random } from '../ts/testing/index'
import { TempDirs } from './helpers'

const dirs = new TempDirs('zongzi-testing-')
const REAL = [Date, Math.random, performance.now, process.hrtime]
afterAll(() => dirs.removeAll())

/** A command of the counters below: add `n` to `key`, or `touch` it. */
type Op = { op: 'add' | 'touch'; key: string; n: number }
const encode = (c: Op) => Buffer.from(JSON.stringify(c))
const decode = (e: Entry): Op => JSON.parse(e.data.toString())
const read = async (input: Readable) => {
  let s = ''
  for await (const c of input) s += c
  return s
}

/** commands adds to one of five keys, and now and then (from entry 40 on) touches one. */
const commands = (r: Random, index: number) =>
  encode({
    op: index >= 40 && r.chance(0.1) ? 'touch' : 'add',
    key: `k${r.int(5)}`,
    n: r.int(100),
  })
/** The index of the first `touch` in the log of `seed`. */
const firstTouch = (seed = 1) => {
  const r = new Random(seed)
  for (let i = 1; i <= 300; i++) if (JSON.parse(commands(r, i).toString()).op === 'touch') return i
  throw new Error('no touch in the log')
}

/** Counters is a correct state machine: sums by key, and the number of entries applied. */
class Counters implements StateMachine {
  sums = new Map<string, number>()
  count = 0
  update(entries: Entry[]): ApplyResult[] {
    return entries.map((e) => {
      const c = decode(e)
      this.count++
      if (c.op === 'add') this.sums.set(c.key, (this.sums.get(c.key) ?? 0) + c.n)
      return { value: this.count, data: Buffer.from(String(this.sums.get(c.key) ?? 0)) }
    })
  }
  query(q: Buffer) {
    return Buffer.from(String(this.sums.get(q.toString()) ?? 0))
  }
  async saveSnapshot(out: Writable) {
    out.end(JSON.stringify({ sums: [...this.sums], count: this.count }))
  }
  async recoverFromSnapshot(input: Readable, _index?: number) {
    const s = JSON.parse(await read(input))
    this.sums = new Map(s.sums)
    this.count = s.count
  }
}

/** Stamped records when each key was touched with the wall clock: replicas drift apart. */
class Stamped extends Counters {
  touched = new Map<string, number>()
  override update(entries: Entry[]): ApplyResult[] {
    for (const e of entries) {
      const c = decode(e)
      if (c.op === 'touch') this.touched.set(c.key, Date.now())
    }
    return super.update(entries)
  }
  override async saveSnapshot(out: Writable) {
    out.end(JSON.stringify({ sums: [...this.sums], count: this.count, t: [...this.touched] }))
  }
}

/** Forgetful's snapshot leaves out `count`: a replica recovered from it answers wrongly. */
class Forgetful extends Counters {
  override async saveSnapshot(out: Writable) {
    out.end(JSON.stringify({ sums: [...this.sums] }))
  }
  override async recoverFromSnapshot(input: Readable) {
    this.sums = new Map(JSON.parse(await read(input)).sums)
  }
}

const queries = () => ['k0', 'k1', 'k2', 'k3', 'k4'].map((k) => Buffer.from(k))

describe('checkStateMachine', () => {
  it('passes a deterministic state machine through restarts, snapshots and installs', async () => {
    const report = await checkStateMachine({
      factory: () => new Counters(),
      commands,
      queries,
      seed: 3,
    })
    expect(report.entries).toBe(300)
    expect(report.faults.restart).toBeGreaterThan(0)
    expect(report.faults.save).toBeGreaterThan(0)
    expect(report.faults.install).toBeGreaterThan(0)
    expect(report.comparisons).toBeGreaterThan(10)
  })

  it('catches a state machine that uses Date.now(), at the first entry that does', async () => {
    const e = await checkStateMachine({ factory: () => new Stamped(), commands }).catch((x) => x)
    expect(e).toBeInstanceOf(CheckError)
    expect(e.kind).toBe('state')
    expect(e.index).toBe(firstTouch())
    expect(e.message).toContain(`first differ after entry ${firstTouch()}`)
    expect(e.message).toContain('Date.now() called by update()')
    expect(e.message).toMatch(/line 1 of the snapshot/)
    // The real clock is back once the check ends.
    expect(typeof Date.now()).toBe('number')
    expect(Math.abs(Date.now() - new Date().getTime())).toBeLessThan(1000)
  })

  it('catches Math.random() in a result, at the entry whose results differ', async () => {
    class Dice extends Counters {
      override update(entries: Entry[]): ApplyResult[] {
        return entries.map((e) => ({ value: decode(e).op === 'touch' ? Math.random() : 1 }))
      }
    }
    const e = await checkStateMachine({ factory: () => new Dice(), commands }).catch((x) => x)
    expect(e).toBeInstanceOf(CheckError)
    expect(e.kind).toBe('result')
    expect(e.index).toBe(firstTouch())
    expect(e.message).toContain(`the result of entry ${firstTouch()} differs`)
    expect(e.message).toContain('Math.random() called by update()')
  })

  it('reports a clock read that changes nothing, unless allowed', async () => {
    class Logging extends Counters {
      override update(entries: Entry[]): ApplyResult[] {
        void Date.now()
        return super.update(entries)
      }
    }
    const o = { factory: () => new Logging(), commands, entries: 50 }
    // Dates made outside the check are still Dates inside it.
    const made = new Date(0)
    class Checks extends Counters {
      override update(entries: Entry[]): ApplyResult[] {
        if (!(made instanceof Date)) throw new Error('not a Date')
        return super.update(entries)
      }
    }
    await checkStateMachine({ factory: () => new Checks(), commands, entries: 20 })
    const e = await checkStateMachine(o).catch((x) => x)
    expect(e.kind).toBe('nondeterminism')
    expect(e.message).toContain('Date.now() called by update()')
    await expect(checkStateMachine({ ...o, allowNondeterminism: true })).resolves.toBeTruthy()
  })

  it('catches a snapshot that forgets a field, naming the snapshot in the history', async () => {
    const e = await checkStateMachine({ factory: () => new Forgetful(), commands, queries }).catch(
      (x) => x,
    )
    expect(e).toBeInstanceOf(CheckError)
    expect(e.kind).toBe('result')
    expect(e.message).toMatch(/(restarted from its snapshot|installed replica \d's snapshot) at/)
    expect(e.uses).toEqual([])
  })

  it('runs asynchronous updates, and reports a throw naming the method', async () => {
    class Later extends Counters {
      override update(entries: Entry[]): ApplyResult[] {
        return super.update(entries)
      }
      async updateLater(entries: Entry[]) {
        await new Promise((r) => setImmediate(r))
        if (entries.some((e) => decode(e).op === 'touch')) throw new Error('no touching')
        return super.update(entries)
      }
    }
    const later = () => {
      const sm = new Later()
      return Object.assign(sm, { update: (e: Entry[]) => sm.updateLater(e) })
    }
    const all = (r: Random) => encode({ op: 'add', key: `k${r.int(5)}`, n: r.int(9) })
    const ok = await checkStateMachine({ factory: later, commands: all, entries: 100 })
    expect(ok.batches).toBeGreaterThan(0)
    const e = await checkStateMachine({ factory: later, commands }).catch((x) => x)
    expect(e.kind).toBe('contract')
    expect(e.message).toMatch(/threw in update\(\): no touching/)
    // Every clock and random source is back as it was, after a throw too.
    expect([Date, Math.random, performance.now, process.hrtime]).toEqual(REAL)
  })

  it('catches a state machine that reads its snapshot as a single chunk', async () => {
    class OneChunk extends Counters {
      override async recoverFromSnapshot(input: Readable) {
        const first: Buffer = await new Promise((r) => input.once('data', r))
        input.destroy()
        const s = JSON.parse(first.toString())
        this.sums = new Map(s.sums)
        this.count = s.count
      }
    }
    const e = await checkStateMachine({ factory: () => new OneChunk(), commands }).catch((x) => x)
    expect(e).toBeInstanceOf(CheckError)
    expect(e.kind).toBe('contract')
    expect(e.message).toMatch(/replica \d threw in recoverFromSnapshot\(\): .*JSON/)
  })

  it('checks a persistent state machine’s open() against what sync() kept', async () => {
    const dir = dirs.make()
    /** Durable keeps Counters in a file, written by sync(); `honest` says what open() tells. */
    class Durable extends Counters implements PersistentStateMachine {
      applied = 0
      constructor(
        readonly file: string,
        readonly honest: boolean,
      ) {
        super()
      }
      async open() {
        try {
          const s = JSON.parse(readFileSync(this.file, 'utf8'))
          this.sums = new Map(s.sums)
          this.count = s.count
          this.applied = s.applied
        } catch {}
        // A dishonest one claims the last index it ever applied, kept or not.
        return this.honest ? this.applied : (Durable.claimed.get(this.file) ?? 0)
      }
      override update(entries: Entry[]) {
        this.applied = entries[entries.length - 1].index
        Durable.claimed.set(this.file, this.applied)
        return super.update(entries)
      }
      async sync() {
        const s = { sums: [...this.sums], count: this.count, applied: this.applied }
        writeFileSync(this.file, JSON.stringify(s))
      }
      override async recoverFromSnapshot(input: Readable, index: number) {
        await super.recoverFromSnapshot(input)
        this.applied = index
        await this.sync()
      }
      static claimed = new Map<string, number>()
    }
    const file = (run: string, replica: number) => join(dir, `${run}-${replica}.json`)
    const honest = await checkStateMachine({
      factory: (_s, r) => new Durable(file('honest', r), true),
      commands,
      queries,
      faults: { restart: 0.1 },
    })
    expect(honest.faults.sync).toBeGreaterThan(0)
    const e = await checkStateMachine({
      factory: (_s, r) => new Durable(file('dishonest', r), false),
      commands,
      faults: { restart: 0.1, sync: 0.05 },
    }).catch((x) => x)
    expect(e).toBeInstanceOf(CheckError)
    // It lost entries it said it had: a later result, or the state, differs.
    expect(['result', 'state']).toContain(e.kind)
    expect(e.message).toMatch(/restarted: open\(\) returned \d+/)
  })
})
