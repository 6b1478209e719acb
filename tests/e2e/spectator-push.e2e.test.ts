import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { historyDeltaSchema, historySnapshotSchema, type HistoryDelta } from '../../shared/protocol/history'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { createRoom, e2eEnvironment } from '../support/e2e'
import { startReportingVolunteer, type ReportingVolunteer } from '../support/report-driver'
import { nextEvent, testSockets } from '../support/socket-events'

/**
 * Issue 24 "Push, not poll" and code-splitting: spectator pages follow the server's socket.io
 * pushes (room state, and the run history as a snapshot then deltas) instead of polling the
 * HTTP API, and never download TensorFlow.js. Volunteers are real socket.io clients that report
 * like training tabs (tests/support/report-driver.ts), so the room is live at no CPU cost.
 */

/** A name the tfjs engine keeps in any bundle of it (Engine.registerBackend); absent from the spectator chunks. */
const TFJS_MARKER = 'registerBackend'

describe('spectator pages: pushes, not polls; no tfjs', () => {
  const env = e2eEnvironment()
  const socket = testSockets()
  const volunteers: ReportingVolunteer[] = []
  afterEach(() => {
    for (const v of volunteers.splice(0)) v.stop()
  })

  it('the history feed sends a snapshot once, then only the new points', async () => {
    const { server } = env
    await createRoom(server, { room: 'feed', config: { totalSteps: 1000 } })
    volunteers.push(await startReportingVolunteer(server.url, 'feed', 'v1', { everyMs: 250 }))
    const s = socket(server.url)
    await nextEvent(s, 'connect', 'spectator connects')
    const snap = nextEvent<unknown>(s, 'history', 'history snapshot')
    const firstDelta = nextEvent<unknown>(s, 'history-delta', 'first history delta')
    s.emit('join', { v: PROTOCOL_VERSION, room: 'feed', role: 'spectator', history: true })
    const snapshot = historySnapshotSchema.parse(await snap)
    expect(snapshot.room).toBe('feed')
    // A socket cannot pull snapshots (megabytes each) at the join rate: a re-join this soon gets
    // a refusal instead of a second snapshot.
    const refused = nextEvent<{ code: string; message: string }>(s, 'error', 'snapshot refused', (e) => /history/.test(e.message))
    s.emit('join', { v: PROTOCOL_VERSION, room: 'feed', role: 'spectator', history: true })
    expect((await refused).code).toBe('rate-limited')
    const current = snapshot.runs.find((r) => r.run === snapshot.currentRun)
    const have = current?.count ?? 0
    // Deltas continue where the snapshot ended (the first may overlap it by the points sampled
    // between the channel's last push and this join), one run each, a few points at most.
    const d1 = historyDeltaSchema.parse(await firstDelta)
    expect(d1.run).toBe(snapshot.currentRun)
    expect(d1.from).toBeLessThanOrEqual(have)
    expect(d1.from + d1.points.length).toBeGreaterThanOrEqual(have)
    const later: HistoryDelta[] = []
    await new Promise<void>((resolve, reject) => {
      s.on('history-delta', (raw: unknown) => {
        const d = historyDeltaSchema.safeParse(raw)
        if (!d.success) return reject(new Error(d.error.message))
        later.push(d.data)
        if (later.length === 3) resolve()
      })
      s.on('history', () => reject(new Error('a second snapshot without thinning')))
    })
    let next = d1.from + d1.points.length
    for (const d of later) {
      expect(d.from).toBe(next)
      expect(d.points.length).toBeLessThanOrEqual(2)
      next += d.points.length
    }
    expect(later.at(-1)!.points.at(-1)!.globalStep).toBeGreaterThan(d1.points.at(-1)!.globalStep)
  })

  it('the dashboard shows the step advancing with one GET of the room and no history polls; it loads no tfjs', async () => {
    const { server, browser } = env
    const created = await createRoom(server, { room: 'watch', config: { totalSteps: 1000 } })
    volunteers.push(await startReportingVolunteer(server.url, 'watch', 'ada'))
    volunteers.push(await startReportingVolunteer(server.url, 'watch', 'grace'))

    const ctx = await browser.newContext()
    const page = await ctx.newPage()
    page.on('pageerror', (e) => console.error('[dashboard] pageerror', e.message))
    const requests: string[] = []
    const scripts: Promise<{ url: string; body: string }>[] = []
    page.on('request', (r) => requests.push(r.url()))
    page.on('response', (r) => {
      if (/\.m?js(\?|$)/.test(r.url())) scripts.push(r.text().then((body) => ({ url: r.url(), body }), () => ({ url: r.url(), body: '' })))
    })
    await page.goto(`${server.url}/room/watch`)
    await page.getByRole('row').filter({ hasText: 'grace' }).first().waitFor({ timeout: 20_000 })
    const first = await shownStep(page, 0)
    // Several pushes later: the step on the page keeps rising with no request of ours.
    const later = await shownStep(page, first + 6)
    expect(later).toBeGreaterThan(first)
    // The learning chart gets its points from the history feed, not from a poll.
    await page.locator('.recharts-line').first().waitFor({ timeout: 20_000 })

    // Where the run is going, and who did it (issue 24): progress toward totalSteps with an ETA,
    // the swarm's samples/s, a constant learning rate as one line, each volunteer's share.
    await expect(page.getByTestId('run-progress').textContent()).resolves.toMatch(/of 1,000/)
    await page.getByTestId('run-eta').filter({ hasText: /left/ }).waitFor({ timeout: 20_000 })
    await expect(page.getByTestId('kpi-samples-s').textContent()).resolves.not.toMatch(/^—/)
    await expect(page.getByTestId('constant-lr').textContent()).resolves.toBe('learning rate 0.05 (constant)')
    const shares = await page.getByTestId('peer-share').allTextContents()
    expect(shares).toHaveLength(2)
    for (const share of shares) expect(share).toMatch(/^(4\d|5\d)%$/)
    await expect(page.getByTestId('model-snippet').textContent()).resolves.toBe(`const model = await tf.loadLayersModel('${server.url}/api/rooms/watch/model.json')`)

    const api = requests.filter((u) => new URL(u).pathname.startsWith('/api/rooms/'))
    expect(api.filter((u) => /\/api\/rooms\/watch$/.test(new URL(u).pathname)), api.join('\n')).toHaveLength(1)
    expect(api.filter((u) => new URL(u).pathname.endsWith('/history')), api.join('\n')).toHaveLength(0)
    expect(requests.some((u) => u.includes('/socket.io/'))).toBe(true)

    // No tfjs: neither its WebAssembly nor a chunk that bundles its engine.
    expect(requests.filter((u) => /\.wasm(\?|$)|VolunteerPage|worker/.test(u))).toEqual([])
    const bodies = await Promise.all(scripts)
    expect(bodies.length).toBeGreaterThan(0)
    expect(bodies.filter((b) => b.body.includes(TFJS_MARKER)).map((b) => b.url)).toEqual([])

    // The projector: a leaderboard, a titled chart with a legend, the same push (no polls).
    const projector = await ctx.newPage()
    const projectorRequests: string[] = []
    projector.on('request', (r) => projectorRequests.push(new URL(r.url()).pathname))
    await projector.goto(`${server.url}/projector/watch`)
    await projector.getByTestId('leaderboard').filter({ hasText: 'grace' }).filter({ hasText: 'ada' }).waitFor({ timeout: 20_000 })
    await projector.getByRole('heading', { name: 'Test accuracy of the swarm' }).waitFor()
    await projector.locator('.proj-chart .recharts-legend-wrapper').filter({ hasText: /Run \d+: Decentralized SGD/ }).waitFor({ timeout: 20_000 })
    expect(projectorRequests.filter((u) => u.startsWith('/api/rooms/'))).toEqual(['/api/rooms/watch'])

    // The marker is real: the volunteer page's chunk carries it.
    const volunteer = await ctx.newPage()
    const volunteerScripts: Promise<string>[] = []
    volunteer.on('response', (r) => {
      if (/VolunteerPage[^/]*\.js/.test(r.url())) volunteerScripts.push(r.text())
    })
    await volunteer.goto(`${server.url}/`)
    await volunteer.getByRole('button', { name: /join/i }).first().waitFor({ timeout: 20_000 })
    expect(volunteerScripts.length).toBe(1)
    expect(await volunteerScripts[0]).toContain(TFJS_MARKER)

    // The host deletes the room: the server closes the spectators' sockets and the page says it is gone.
    const del = await fetch(`${server.url}/api/rooms/watch`, { method: 'DELETE', headers: { authorization: `Bearer ${created.hostToken}` } })
    expect(del.status).toBe(200)
    await page.getByRole('heading', { name: /not found/ }).waitFor({ timeout: 20_000 })
    await ctx.close()
  })

  it('falls back to polling while the socket cannot connect, and shows a deleted room as gone', async () => {
    const { server, browser } = env
    const created = await createRoom(server, { room: 'blocked', config: { totalSteps: 1000 } })
    volunteers.push(await startReportingVolunteer(server.url, 'blocked', 'ada'))
    const ctx = await browser.newContext()
    const page = await ctx.newPage()
    // A proxy that refuses socket.io: the page must keep itself live over HTTP.
    await page.route('**/socket.io/**', (r) => r.abort())
    const roomGets: string[] = []
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/rooms/blocked') roomGets.push(r.url())
    })
    await page.goto(`${server.url}/room/blocked`)
    const first = await shownStep(page, 0)
    await shownStep(page, first + 3)
    expect(roomGets.length).toBeGreaterThan(1)

    // Deleted by its host: the page says so instead of showing the last state forever.
    const del = await fetch(`${server.url}/api/rooms/blocked`, { method: 'DELETE', headers: { authorization: `Bearer ${created.hostToken}` } })
    expect(del.status).toBe(200)
    await page.getByRole('heading', { name: /not found/ }).waitFor({ timeout: 20_000 })
    await ctx.close()
  })
})

/** The dashboard's Step KPI once it exceeds `above` (waits on the page, not on a sleep). */
async function shownStep(page: Page, above: number): Promise<number> {
  const handle = await page.waitForFunction((min) => {
    const text = document.querySelector('[data-testid="kpi-step"] .kpi-value')?.textContent ?? ''
    const n = Number(text.replace(/[^0-9]/g, ''))
    return text && n > min ? n : false
  }, above, { timeout: 30_000 })
  return (await handle.jsonValue()) as number
}
