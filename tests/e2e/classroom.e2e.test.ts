import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { volunteerContext } from '../support/browser'
import { e2eEnvironment } from '../support/e2e'
import { getJson, waitFor } from '../support/server'

/**
 * Issue 5 acceptance, one classroom from start to end in real headless Chromium: a teacher
 * creates a room on /host by clicking, three students join by typing the code, a spectator
 * watches the dashboard, the teacher pauses and resumes, a stranger cannot control the room,
 * exports and the TensorFlow.js model download are valid files, and the room (config, history,
 * checkpoint) survives a server restart with training resuming from the checkpoint.
 */

interface ApiPeer {
  id: string
  name?: string
  step: number
  globalStep?: number
  accuracy: number | null
  stage?: string
}
interface ApiRoom {
  room: string
  code: string
  run: number
  paused: boolean
  checkpointStep: number | null
  config: { algorithm: string; topology: string; model: string; dataset: string; totalSteps: number; lr: number; stepDeadlineMs: number }
  peers: ApiPeer[]
}

const STUDENTS = ['Ada', 'Grace', 'Alan']

const progress = (p: ApiPeer) => p.globalStep ?? p.step

/** The dashboard's "Test accuracy" figure as a fraction (null while it shows a dash). */
async function shownAccuracy(page: Page): Promise<number | null> {
  const text = (await page.getByTestId('kpi-test-accuracy').textContent()) ?? ''
  const m = /([\d.]+)\s*%/.exec(text)
  return m ? Number(m[1]) / 100 : null
}

describe('classroom: host, students, spectator, controls, exports, restart', () => {
  const env = e2eEnvironment()

  it('runs a class end to end', async () => {
    const { browser } = env
    let server = env.server
    // (a) The teacher creates a room by clicking.
    const hostCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const host = await hostCtx.newPage()
    host.on('pageerror', (e) => console.error('[host] pageerror', e.message))
    await host.goto(`${server.url}/host`)
    await host.getByRole('radio', { name: 'Decentralized SGD (D-PSGD)' }).check()
    await host.getByRole('radio', { name: /Classroom demo/ }).click()
    await expect(host.getByLabel('Dataset').inputValue()).resolves.toBe('mnist')
    await expect(host.getByLabel('Model').inputValue()).resolves.toBe('mlp')
    // Long enough that the run is still going after the restart below.
    await host.getByLabel('Training steps').fill('200000')
    // Three tabs share two cores here; a generous neighbour deadline keeps a slow tab from being
    // reported suspect (what a teacher with old school laptops would pick too).
    await host.getByText('Advanced settings').click()
    await host.getByLabel('Neighbour deadline (ms)').fill('15000')
    await host.getByRole('button', { name: 'Create room' }).click()
    const codeBox = host.getByTestId('join-code')
    await codeBox.waitFor()
    const code = ((await codeBox.textContent()) ?? '').trim()
    expect(code).toMatch(/^[A-Za-z0-9_-]{3,}$/)
    const roomUrl = `${server.url}/api/rooms/${encodeURIComponent(code)}`
    const created = (await getJson<ApiRoom>(roomUrl)).body
    expect(created.config).toMatchObject({ algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', totalSteps: 200000, stepDeadlineMs: 15000 })

    // (b) Students type the code on the home page.
    const students: Page[] = []
    for (const name of STUDENTS) {
      const ctx = await volunteerContext(browser, server.url)
      const page = await ctx.newPage()
      page.on('pageerror', (e) => console.error(`[${name}] pageerror`, e.message))
      // ?backend=wasm only pins the backend (two shared cores, no GPU); the room comes from typing.
      await page.goto(`${server.url}/?backend=wasm`)
      await page.getByLabel('Room code').fill(code)
      await page.getByLabel('Your name').fill(name)
      await page.getByRole('button', { name: 'Join' }).click()
      students.push(page)
    }
    await waitFor('3 students training', async () => {
      const { body } = await getJson<ApiRoom>(roomUrl)
      return body.peers.length === 3 && body.peers.every((p) => p.step > 0) && body
    }, 90_000)
    for (const s of students) await expect(s.getByTestId('stage').textContent()).resolves.toMatch(/Training|Stalled/)

    // (c) A spectator sees the peers and accuracy rising, read from the page.
    const spectatorCtx = await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true })
    const spectator = await spectatorCtx.newPage()
    spectator.on('pageerror', (e) => console.error('[spectator] pageerror', e.message))
    await spectator.goto(`${server.url}/room/${encodeURIComponent(code)}`)
    await spectator.getByRole('heading', { name: code }).waitFor()
    for (const name of STUDENTS) await spectator.getByRole('row').filter({ hasText: name }).first().waitFor({ timeout: 20_000 })
    await expect(spectator.getByTestId('kpi-peers').textContent()).resolves.toMatch(/^3/)
    const firstAcc = (await waitFor('an accuracy on the dashboard', () => shownAccuracy(spectator), 60_000)) as number
    const laterAcc = await waitFor('accuracy rising on the dashboard', async () => {
      const a = await shownAccuracy(spectator)
      return a !== null && a > firstAcc + 0.05 && a > 0.5 && a
    }, 120_000, 1000)
    expect(laterAcc).toBeGreaterThan(firstAcc)

    // (d) Pause from the host page: students show Paused and steps stop; then resume.
    await host.getByRole('button', { name: 'Pause', exact: true }).click()
    await waitFor('the server marks the room paused', async () => (await getJson<ApiRoom>(roomUrl)).body.paused, 10_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; host page says: ${await host.locator('.notice-slot').textContent()}`)
    })
    for (const s of students) {
      await s.getByTestId('stage').filter({ hasText: 'Paused' }).waitFor({ timeout: 15_000 }).catch(async (e) => {
        throw new Error(`${(e as Error).message}; stage shows ${await s.getByTestId('stage').textContent()}; room ${JSON.stringify((await getJson<ApiRoom>(roomUrl)).body.peers.map((p) => [p.name, p.id, p.stage]))}; log ${await s.getByRole('list', { name: 'Event log' }).textContent()}`)
      })
    }
    // A tab pauses at its next step boundary. One that was a round ahead waits in its step for
    // neighbours that paused first, up to the neighbour deadline (15 s here): allow for that.
    const paused = await waitFor('every peer reports paused', async () => {
      const { body } = await getJson<ApiRoom>(roomUrl)
      return body.paused && body.peers.every((p) => p.stage === 'paused') && body
    }, 30_000)
    await new Promise((r) => setTimeout(r, 2500))
    const stillPaused = (await getJson<ApiRoom>(roomUrl)).body
    for (const p of stillPaused.peers) expect(p.step).toBe(paused.peers.find((q) => q.id === p.id)!.step)
    await host.getByRole('button', { name: 'Resume' }).click()
    await waitFor('steps advance after resume', async () => {
      const { body } = await getJson<ApiRoom>(roomUrl)
      return !body.paused && body.peers.every((p) => p.step > stillPaused.peers.find((q) => q.id === p.id)!.step + 3) && body
    }, 30_000)

    // (e) Controls without the host token are refused and change nothing.
    const before = (await getJson<ApiRoom>(roomUrl)).body
    const controlUrl = `${roomUrl}/control`
    const noToken = await fetch(controlUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'pause' }) })
    expect(noToken.status).toBe(401)
    const wrong = await fetch(controlUrl, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer not-the-host-token' },
      body: JSON.stringify({ action: 'new-run', config: { algorithm: 'ssgd', topology: 'clique' } }),
    })
    expect(wrong.status).toBe(403)
    const unchanged = (await getJson<ApiRoom>(roomUrl)).body
    expect(unchanged.paused).toBe(false)
    expect(unchanged.run).toBe(before.run)
    expect(unchanged.config).toEqual(before.config)

    // (f) Exports from the dashboard's buttons.
    const csvDl = spectator.waitForEvent('download')
    await spectator.getByRole('link', { name: 'History (CSV)' }).click()
    const csv = readFileSync(await (await csvDl).path(), 'utf8').trim().split(/\r?\n/)
    const header = csv[0].split(',')
    expect(header.length).toBeGreaterThan(3)
    expect(header.some((h) => /accuracy/i.test(h))).toBe(true)
    expect(csv.length).toBeGreaterThan(2)
    for (const row of csv.slice(1)) expect(row.split(',').length).toBe(header.length)

    const jsonDl = spectator.waitForEvent('download')
    await spectator.getByRole('link', { name: 'History (JSON)' }).click()
    const history = JSON.parse(readFileSync(await (await jsonDl).path(), 'utf8')) as { runs: { run: number; points: { accuracy: number | null }[] }[] }
    expect(history.runs.length).toBeGreaterThanOrEqual(1)
    expect(history.runs[0].points.length).toBeGreaterThan(1)
    expect(history.runs[0].points.some((p) => (p.accuracy ?? 0) > 0.5)).toBe(true)

    const cpStep = await waitFor('a room checkpoint', async () => (await getJson<ApiRoom>(roomUrl)).body.checkpointStep ?? undefined, 60_000)
    const modelDl = spectator.waitForEvent('download')
    await spectator.getByRole('link', { name: 'Download model (TensorFlow.js)' }).click()
    const model = JSON.parse(readFileSync(await (await modelDl).path(), 'utf8')) as {
      format: string; weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[]; weightData: string
    }
    expect(model.format).toBe('tabswarm-weights')
    const specs = model.weightsManifest[0].weights
    expect(specs.map((w) => [w.name, w.shape])).toEqual([['dense0/w', [784, 128]], ['dense0/b', [128]], ['out/w', [128, 10]], ['out/b', [10]]])
    const weights = new Float32Array(new Uint8Array(Buffer.from(model.weightData, 'base64')).buffer)
    expect(weights.length).toBe(784 * 128 + 128 + 128 * 10 + 10)
    expect(weights.every(Number.isFinite)).toBe(true)
    expect(weights.some((w) => w !== 0)).toBe(true)

    // (g) Restart the server on the same port and data directory.
    const beforeRestart = (await getJson<ApiRoom>(roomUrl)).body
    const savedStep = beforeRestart.checkpointStep ?? cpStep
    server = env.server = await server.restart()
    const after = await waitFor('room back after restart', async () => {
      const { status, body } = await getJson<ApiRoom>(roomUrl)
      return status === 200 && body
    }, 15_000)
    expect(after.config).toEqual(beforeRestart.config)
    expect(after.run).toBe(beforeRestart.run)
    expect(after.checkpointStep).toBe(savedStep)
    const kept = (await getJson<{ runs: { points: unknown[] }[] }>(`${roomUrl}/history?format=json`)).body
    expect(kept.runs[0].points.length).toBeGreaterThan(1)

    // The students' tabs reload (their URL now carries ?room=CODE) and rejoin. The first one back
    // is alone and resumes from the checkpoint, so the room's progress does not start over.
    await students[0].reload()
    await waitFor('first student resumes from the checkpoint', async () => {
      const { body } = await getJson<ApiRoom>(roomUrl)
      return body.peers.length === 1 && progress(body.peers[0]) > savedStep && body
    }, 60_000)
    for (const s of students.slice(1)) await s.reload()
    const rejoined = await waitFor('all students training again', async () => {
      const { body } = await getJson<ApiRoom>(roomUrl)
      return body.peers.length === 3 && body.peers.every((p) => p.step > 0 && p.stage === 'training') && body
    }, 60_000)
    expect(Math.max(...rejoined.peers.map(progress))).toBeGreaterThan(savedStep)
    // The dashboard keeps working across the restart.
    await expect(spectator.getByTestId('kpi-peers').filter({ hasText: /^3/ }).waitFor({ timeout: 15_000 })).resolves.toBeUndefined()
  })
})
