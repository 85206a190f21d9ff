import { describe, expect, it } from 'vitest'

import { ZongziError } from '../ts/binding/errors'
import { type CircuitState, HostHealth, isHostFailure } from '../ts/coordinator/client/health'

describe('HostHealth', () => {
  it('opens a circuit after failures in a row, and skips the host while it is open', () => {
    const changes: Array<[string, CircuitState]> = []
    const h = new HostHealth({ failures: 3, openMs: 1000 }, (a, s) => changes.push([a, s]))
    h.failure('a', 0)
    h.failure('a', 0)
    expect(h.available('a', 1)).toBe(true)
    h.failure('a', 0)
    expect(h.state('a')).toBe('open')
    expect(h.available('a', 999)).toBe(false)
    expect(h.available('b', 999)).toBe(true)
    expect(changes).toEqual([['a', 'open']])
  })

  it('a success in between starts the count again', () => {
    const h = new HostHealth({ failures: 2 })
    h.failure('a', 0)
    h.success('a', 5)
    h.failure('a', 0)
    expect(h.state('a')).toBe('closed')
  })

  it('lets a trial through once open long enough; a success closes, a failure reopens', () => {
    const h = new HostHealth({ failures: 1, openMs: 100, maxOpenMs: 150 })
    h.failure('a', 0)
    expect(h.available('a', 100)).toBe(true)
    expect(h.state('a')).toBe('half-open')
    expect(h.available('a', 101)).toBe(false) // one trial at a time
    h.failure('a', 110)
    expect(h.state('a')).toBe('open')
    expect(h.available('a', 200)).toBe(false) // open for twice as long, bounded by 150
    expect(h.available('a', 260)).toBe(true)
    h.success('a', 3)
    expect(h.state('a')).toBe('closed')
    expect(h.available('a', 261)).toBe(true)
  })

  it('hedges after twice the recent 90th percentile, within its bounds', () => {
    const h = new HostHealth({ minHedgeMs: 50, maxHedgeMs: 1000 })
    expect(h.hedgeDelay()).toBe(50)
    for (let i = 0; i < 10; i++) h.success('a', 100)
    expect(h.hedgeDelay()).toBe(200)
    for (let i = 0; i < 64; i++) h.success('a', 5000)
    expect(h.hedgeDelay()).toBe(1000)
  })

  it("counts this host's own answers in the hedging delay, and no circuit for them", () => {
    const h = new HostHealth({ minHedgeMs: 50, maxHedgeMs: 1000 })
    for (let i = 0; i < 64; i++) h.latency(300)
    expect(h.hedgeDelay()).toBe(600)
    h.success('a', 10)
    expect(h.hedgeDelay()).toBe(600)
    expect(h.state('a')).toBe('closed')
  })

  it('counts only failures of the host itself', () => {
    expect(isHostFailure(new ZongziError('ERR_UNAVAILABLE', 'x'))).toBe(true)
    expect(isHostFailure(new ZongziError('ERR_TIMEOUT', 'x'))).toBe(true)
    expect(isHostFailure(new ZongziError('ERR_NO_LEADER', 'x'))).toBe(false)
    expect(isHostFailure(new ZongziError('ERR_SHARD_NOT_FOUND', 'x'))).toBe(false)
    expect(isHostFailure(new Error('x'))).toBe(false)
  })
})
