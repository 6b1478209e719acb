import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { isKeyPeerId } from '../../shared/identity'
import type { RoomResponse } from '../../shared/protocol/http'
import { volunteerContext } from '../support/browser'
import { createRoom, e2eEnvironment, roomUrl } from '../support/e2e'
import { getJson, waitFor } from '../support/server'

/**
 * Issue 24, "People, not ids" and "Phones stay", in real headless Chromium against a real
 * server: a reloaded tab comes back under the same key-derived id and friendly name and keeps
 * its credit (the server's ledger); a tab hidden for less than the room's grace stays in the
 * roster, and one hidden for longer steps out without losing its credit and comes back when
 * shown. Visibility is emulated by overriding document.visibilityState and dispatching
 * 'visibilitychange', which is all the app reads.
 */

/** Settings that let one tab train alone on two shared cores without a deadline or a download stall. */
const CONFIG = { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', totalSteps: 200_000, stepDeadlineMs: 15_000 }

async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') })
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h })
    document.dispatchEvent(new Event('visibilitychange'))
  }, hidden)
}

const room = async (url: string) => (await getJson<RoomResponse>(url)).body
const ledgerOf = (r: RoomResponse, id: string) => r.leaderboard.find((e) => e.id === id)?.samples ?? 0

describe('volunteer identity, credit and hidden tabs', () => {
  const env = e2eEnvironment()

  async function trainingTab(code: string): Promise<{ page: Page; id: string }> {
    const ctx = await volunteerContext(env.browser, env.server.url)
    // Headless Chromium refuses Screen Wake Lock unless the permission is granted (a phone asks no one).
    await ctx.grantPermissions(['microphone', 'camera', 'screen-wake-lock'], { origin: env.server.url })
    const page = await ctx.newPage()
    page.on('pageerror', (e) => console.error('[tab] pageerror', e.message))
    await page.goto(`${env.server.url}/?room=${encodeURIComponent(code)}&backend=wasm`)
    const url = roomUrl(env.server, code)
    const r = await waitFor('the tab training and credited', async () => {
      const body = await room(url)
      const p = body.peers[0]
      return p && p.step > 0 && ledgerOf(body, p.id) > 0 && body
    }, 120_000)
    return { page, id: r.peers[0].id }
  }

  it('a reloaded tab keeps its name, its id and its credit', async () => {
    const created = await createRoom(env.server, { config: CONFIG })
    const url = roomUrl(env.server, created.room)
    const { page, id } = await trainingTab(created.room)
    // The id comes from the tab's key pair (IndexedDB), not from its socket.
    expect(isKeyPeerId(id)).toBe(true)
    const shownName = (await page.getByTestId('volunteer-name').textContent())!.trim()
    expect(shownName).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/)
    const before = await room(url)
    expect(before.peers[0].name).toBe(shownName)
    // The page shows its own place in the run, and links to the live dashboard.
    await page.getByTestId('standing').filter({ hasText: /#1 of 1 · [\d,]+ samples · 100% of the run/ }).waitFor({ timeout: 30_000 })
    expect(await page.getByRole('link', { name: /live dashboard/ }).getAttribute('href')).toBe(`/room/${created.room}`)
    // Plain words in the log; the technical line only under "Show details".
    await page.getByRole('list', { name: 'Event log' }).filter({ hasText: `Joined room ${created.room} as ${shownName}` }).waitFor()

    // Phones stay: the screen is kept on while training and let go on the student's pause.
    await page.getByTestId('screen-on').waitFor({ timeout: 10_000 })
    await page.getByRole('button', { name: 'Pause' }).click()
    await page.getByTestId('screen-on').waitFor({ state: 'detached', timeout: 10_000 })
    await page.getByRole('button', { name: 'Resume' }).click()
    await page.getByTestId('screen-on').waitFor({ timeout: 10_000 })

    const credited = ledgerOf(await room(url), id)
    await page.reload()
    await page.getByTestId('volunteer-name').waitFor({ timeout: 60_000 })
    const back = await waitFor('the reloaded tab back in the roster', async () => {
      const body = await room(url)
      return body.peers.some((p) => p.id === id) && body
    }, 120_000)
    // Same id and name, and the count went on from where it was.
    expect(back.peers.map((p) => p.id)).toEqual([id])
    expect(back.peers[0].name).toBe(shownName)
    expect(ledgerOf(back, id)).toBeGreaterThanOrEqual(credited)
    expect(back.peers[0].samples).toBeGreaterThanOrEqual(credited)
    expect((await page.getByTestId('volunteer-name').textContent())!.trim()).toBe(shownName)
    await page.getByRole('list', { name: 'Event log' }).filter({ hasText: /Welcome back: the [\d,]+ samples you already trained still count/ }).waitFor({ timeout: 30_000 })
    await waitFor('credit growing after the reload', async () => ledgerOf(await room(url), id) > credited, 60_000)

    // Renaming on the volunteer page: saved, applied by a reload under the same id and credit.
    const beforeRename = ledgerOf(await room(url), id)
    await page.getByRole('button', { name: 'Change' }).click()
    await page.getByLabel('New name').fill('  Ada   Lovelace\u202e ')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.getByTestId('volunteer-name').filter({ hasText: /^Ada Lovelace$/ }).waitFor({ timeout: 60_000 })
    const renamed = await waitFor('the new name in the room', async () => {
      const body = await room(url)
      return body.peers.some((p) => p.id === id && p.name === 'Ada Lovelace') && body
    }, 120_000)
    expect(renamed.peers.map((p) => p.id)).toEqual([id])
    expect(ledgerOf(renamed, id)).toBeGreaterThanOrEqual(beforeRename)
    expect(renamed.leaderboard[0]).toMatchObject({ id, name: 'Ada Lovelace', share: 1 })
    await page.context().close()
  })

  it('a tab hidden for less than the grace stays in the roster; hidden for longer it steps out, keeps its credit, and comes back', async () => {
    const graceMs = 8_000
    const created = await createRoom(env.server, { config: { ...CONFIG, hiddenGraceMs: graceMs } })
    const url = roomUrl(env.server, created.room)
    expect((await room(url)).config.hiddenGraceMs).toBe(graceMs)
    const { page, id } = await trainingTab(created.room)

    // A short absence (a screen dim, a glance at another tab): the room never notices.
    const epoch = (await room(url)).epoch
    await setHidden(page, true)
    const shortHideMs = 2_000
    const until = Date.now() + shortHideMs
    while (Date.now() < until) {
      const r = await room(url)
      expect(r.peers.map((p) => p.id)).toContain(id)
      expect(r.joining).toEqual([])
      await new Promise((res) => setTimeout(res, 250))
    }
    await setHidden(page, false)
    const after = await room(url)
    expect(after.peers.map((p) => p.id)).toContain(id)
    expect(after.epoch).toBe(epoch)

    // A long one: after the grace it steps out as 'hidden' — no eviction, no lost credit.
    const credited = ledgerOf(await room(url), id)
    const hiddenAt = Date.now()
    await setHidden(page, true)
    const away = await waitFor('the hidden tab stepped out', async () => {
      const r = await room(url)
      return r.joining.some((j) => j.id === id && j.away === 'hidden') && r
    }, 60_000, 250)
    expect(Date.now() - hiddenAt).toBeGreaterThanOrEqual(graceMs - 500)
    expect(away.peers.map((p) => p.id)).not.toContain(id)
    expect(away.evictions).toEqual([])
    expect(ledgerOf(away, id)).toBeGreaterThanOrEqual(credited)
    expect(away.leaderboard.map((e) => e.id)).toContain(id)
    await setHidden(page, false)
    await waitFor('back in the roster when shown', async () => (await room(url)).peers.some((p) => p.id === id), 60_000, 250)
    const resumed = ledgerOf(await room(url), id)
    expect(resumed).toBeGreaterThanOrEqual(credited)
    await waitFor('credit growing again', async () => ledgerOf(await room(url), id) > resumed, 60_000)
    await page.context().close()
  })
})
