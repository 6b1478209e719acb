import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser as FirefoxBrowser, Page as FirefoxPage } from 'puppeteer-core'
import type { Page } from 'playwright-core'
import { dataChannelBytes, volunteerContext } from '../support/browser'
import { closeFirefox, firefoxDataChannelBytes, launchFirefox, recordPeerConnections } from '../support/firefox'
import type { PeerView, RoomResponse } from '../../shared/protocol/http'
import { createRoom, e2eEnvironment, roomUrl } from '../support/e2e'
import { getJson, waitFor } from '../support/server'

/**
 * Issue 24 "Another browser": a headless Chromium tab (playwright-core) and a headless Firefox
 * tab (Debian's firefox-esr over WebDriver BiDi, tests/support/firefox.ts) join one DPSGD room on
 * the real server and train together over real WebRTC between the two browsers. The Firefox tab
 * picks its backend by measurement: headless Firefox here has neither WebGPU nor WebGL, so this
 * also covers the fallback to wasm (which used to fail with "The WASM backend was already
 * initialized"), that it downloads only the room's test subset, and LAP-SGD's Hogwild workers.
 */

const ROOM = 'e2e-firefox'
/** One fp32 model of the default MLP (784-128-10). */
const MODEL_BYTES = (784 * 128 + 128 + 128 * 10 + 10) * 4

describe('a Chromium tab and a Firefox tab train one room over real WebRTC', () => {
  const env = e2eEnvironment()
  let firefox: FirefoxBrowser | undefined
  beforeAll(async () => {
    firefox = await launchFirefox()
  })
  afterAll(async () => {
    await closeFirefox(firefox)
  })

  it('both join the roster, exchange parameters with each other and keep stepping', async () => {
    const { server, browser } = env
    const ctx = await volunteerContext(browser, server.url)
    const chromiumPage: Page = await ctx.newPage()
    chromiumPage.on('pageerror', (e) => console.error('[chromium] pageerror', e.message))
    await chromiumPage.goto(`${server.url}/?room=${ROOM}&backend=wasm&name=chromium`)

    const firefoxPage: FirefoxPage = await firefox!.newPage()
    firefoxPage.on('pageerror', (e) => console.error('[firefox] pageerror', String(e)))
    await recordPeerConnections(firefoxPage)
    await firefoxPage.goto(`${server.url}/?room=${ROOM}&name=firefox`)
    expect(await firefoxPage.evaluate(() => navigator.userAgent)).toMatch(/Firefox\//)

    const url = roomUrl(server, ROOM)
    const byName = (body: RoomResponse, name: string) => body.peers.find((p) => p.name === name)
    // Each one's report must already name the other as its neighbour and count bytes from it.
    const linked = (p: PeerView | undefined, other: PeerView | undefined) =>
      p !== undefined && other !== undefined && p.step > 0 && p.neighbors.includes(other.id) && (p.links[other.id]?.received ?? 0) > 0
    const first = await waitFor('the Chromium and the Firefox tab training as neighbours', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      if (status !== 200 || body.peers.length !== 2) return false
      const c = byName(body, 'chromium')
      const f = byName(body, 'firefox')
      return linked(c, f) && linked(f, c) && body
    }, 240_000, 1000)
    const c0 = byName(first, 'chromium')!
    const f0 = byName(first, 'firefox')!
    expect(c0.agent).toBe('browser')
    expect(f0.agent).toBe('browser')
    expect(c0.backend).toBe('wasm')
    // Measured, not forced: the Firefox tab found a working backend without WebGPU or WebGL.
    expect(f0.backend).not.toBeNull()
    expect(f0.backendReason).not.toMatch(/forced/)

    // Both keep stepping and keep exchanging models with each other.
    const after = await waitFor('both tabs advance and receive more from each other', async () => {
      const { body } = await getJson<RoomResponse>(url)
      const c = byName(body, 'chromium')
      const f = byName(body, 'firefox')
      return c && f && c.step > c0.step + 5 && f.step > f0.step + 5 &&
        c.bytesReceived > c0.bytesReceived && f.bytesReceived > f0.bytesReceived && body
    }, 180_000, 1000)
    expect(byName(after, 'chromium')!.neighbors).toEqual([f0.id])
    expect(byName(after, 'firefox')!.neighbors).toEqual([c0.id])

    // The browsers' own WebRTC stats, not only the app's counters: a model each way at least.
    const cb = await dataChannelBytes(chromiumPage)
    const fb = await firefoxDataChannelBytes(firefoxPage)
    expect(fb.connections).toBeGreaterThanOrEqual(1)
    expect(cb.received).toBeGreaterThan(MODEL_BYTES)
    expect(fb.received).toBeGreaterThan(MODEL_BYTES)
    expect(cb.sent).toBeGreaterThan(MODEL_BYTES)
    expect(fb.sent).toBeGreaterThan(MODEL_BYTES)

    // Each tab downloaded the room's test subset, not the whole test split.
    const testFetches = await firefoxPage.evaluate(() =>
      performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/test.bin')))
    expect(testFetches).toEqual([expect.stringMatching(/\/data\/mnist\/test\.bin\?subset=2000$/)])

    await ctx.close()
    await firefoxPage.close()
  })

  it('runs LAP-SGD\'s Hogwild updaters on Web Workers over SharedArrayBuffer', async () => {
    // Firefox used to leave a worker's threaded-wasm tfjs uninitialised now and then (the page
    // failed with hogwild-worker-ready after 60 s, 3 runs out of 3 here); workers in Firefox now
    // run single-threaded wasm (client/runtime/hogwild/worker-core.ts).
    const { server } = env
    const room = `${ROOM}-lap`
    await createRoom(server, { room, config: { algorithm: 'lap-sgd', updaters: 2 } })
    const page = await firefox!.newPage()
    page.on('pageerror', (e) => console.error('[firefox lap] pageerror', String(e)))
    await page.goto(`${server.url}/?room=${room}&backend=wasm&name=firefox-lap`)
    expect(await page.evaluate(() => crossOriginIsolated && typeof SharedArrayBuffer === 'function')).toBe(true)
    const view = await waitFor('the Firefox tab stepping with two Hogwild updaters', async () => {
      const { body } = await getJson<RoomResponse>(roomUrl(server, room))
      const p = body.peers.find((q) => q.name === 'firefox-lap')
      return p && p.updaters === 2 && p.step > 10 && p
    }, 180_000, 1000)
    expect(view.stage).toBe('training')
    await page.close()
  })
})
