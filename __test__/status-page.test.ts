// The status page in a real browser: Debian's chromium, driven by playwright-core (no browser
// download). .ci/run installs chromium where it is missing; without it (a developer's machine)
// this file is skipped, except under CI, where it fails.
import { existsSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
const present = existsSync(CHROMIUM)
if (!present && process.env.CI) throw new Error(`no browser at ${CHROMIUM}: .ci/run installs it`)

/** The screenshot the test keeps: ZONGZI_ARTIFACTS, or the OS temp dir. */
const SHOT = join(process.env.ZONGZI_ARTIFACTS ?? tmpdir(), 'zongzi-status-page.png')

/** HOSTILE would run script if the page ever parsed it as HTML. */
const HOSTILE = '<img src=x onerror="window.pwned=1">'

describe.skipIf(!present)('the status page in chromium', () => {
  let c: OpsCluster
  let browser: Browser
  beforeAll(async () => {
    c = await opsCluster('page', (i) => ({
      httpAddress: '127.0.0.1:0',
      tags: { zone: `z${i}`, ...(i === 1 ? { note: HOSTILE } : {}) },
    }))
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await c?.stop()
  })

  it('shows every host and shard, and a shard created meanwhile without a reload', async () => {
    const first = await c.agents[0].createShard('kv', {
      name: 'users',
      placement: { members: { count: 3 } },
    })
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } })
    const dialogs: string[] = []
    page.on('dialog', (d) => {
      dialogs.push(d.message())
      void d.dismiss()
    })
    await page.goto(`http://${c.agents[0].httpAddress}/`)
    for (const a of c.agents) await page.locator(`tr[data-host="${a.hostId}"]`).waitFor()
    await page.locator(`tr[data-shard="${first.id}"]`).waitFor()
    await page.locator('#live.on').waitFor()

    const sh = await c.agents[2].createShard('kv', {
      name: 'orders',
      placement: { members: { count: 3 } },
    })
    const row = page.locator(`tr[data-shard="${sh.id}"]`)
    await row.waitFor()
    expect(await row.textContent()).toContain('orders')
    // Its leader shows once elected, still without a reload.
    await c.agents[0].waitForShard(sh.id)
    await expect
      .poll(async () => (await row.locator('td').nth(4).textContent())?.trim(), { timeout: 15_000 })
      .toMatch(/^[0-9a-f]{8}$/)

    // The hostile tag is text on the page, never markup.
    const tag = page.locator(`tr[data-host="${c.agents[1].hostId}"] .tag`, { hasText: 'note=' })
    expect(await tag.textContent()).toBe(`note=${HOSTILE}`)
    expect(await page.locator('img').count()).toBe(0)
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBe(
      undefined,
    )
    expect(dialogs).toEqual([])

    // On a phone's width, the page does not scroll sideways; its tables scroll in their box.
    const wide = await page.evaluate(() => document.documentElement.scrollWidth)
    expect(wide).toBeLessThanOrEqual(390)
    mkdirSync(join(SHOT, '..'), { recursive: true })
    await page.screenshot({ path: SHOT, fullPage: true })
    expect(existsSync(SHOT)).toBe(true)
    await page.setViewportSize({ width: 1100, height: 800 })
    await page.screenshot({ path: SHOT.replace(/\.png$/, '-wide.png'), fullPage: true })
  }, 60_000)
})
