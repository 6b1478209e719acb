import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoomResponse } from '../../shared/protocol/http'
import { startServer, type RunningServer } from '../../signaling-server/server'
import { launchBrowser, volunteerContext } from '../support/browser'
import { createRoom, roomUrl } from '../support/e2e'
import { startNodePeer, type NodePeer } from '../support/node-peer'
import { cleanup, getJson, waitFor } from '../support/server'
import { startTurnServer, turnTestUnavailable, type TurnServer } from '../support/turn'

/**
 * The browser side of TURN relays: a Chromium tab and a Node volunteer in a room with
 * `iceTransportPolicy: 'relay'`, on loopback with a real coturn (`--allow-loopback-peers`: here
 * the relay addresses are 127.0.0.1). The tab's own RTCPeerConnection stats must show a relay
 * pair (not just the app's report), the volunteer page says "relayed", and the dashboard's peer
 * table shows it. The two-namespace topology is tests/integration/turn-relay.int.test.ts.
 */

const SECRET = 'tabswarm-turn-e2e'
const unavailable = turnTestUnavailable()

/** The selected pair's candidate types of every connected RTCPeerConnection the page made (the browser's own stats). */
function selectedPairs(page: Page): Promise<{ local: string; remote: string }[]> {
  return page.evaluate(async () => {
    const out: { local: string; remote: string }[] = []
    for (const pc of (window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? []) {
      if (pc.connectionState !== 'connected') continue
      const stats = await pc.getStats()
      const byId = new Map<string, Record<string, unknown>>()
      let pairId: string | null = null
      stats.forEach((s: Record<string, unknown>) => {
        byId.set(s.id as string, s)
        if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') pairId = s.selectedCandidatePairId
      })
      const pair = pairId ? byId.get(pairId) : undefined
      if (pair) out.push({ local: String(byId.get(pair.localCandidateId as string)?.candidateType), remote: String(byId.get(pair.remoteCandidateId as string)?.candidateType) })
    }
    return out
  })
}

describe.skipIf(unavailable !== null)("a browser tab trains over TURN in a 'relay' room", () => {
  let turn: TurnServer
  let server: RunningServer
  let browser: Browser
  const peers: NodePeer[] = []
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-turn-e2e-'))

  beforeAll(async () => {
    turn = await startTurnServer({ secret: SECRET, host: '127.0.0.1', allowLoopbackPeers: true })
    server = await startServer({
      port: 0, host: '127.0.0.1', dataDir, staticDir: process.env.TABSWARM_DIST ?? join(process.cwd(), 'dist'), log: () => {},
      ice: { servers: [], turn: { secret: SECRET, urls: [turn.url], ttlSec: 600 } },
    })
    browser = await launchBrowser()
  }, 60_000)

  afterAll(async () => {
    for (const p of peers) p.kill()
    await browser?.close()
    await server?.close()
    await turn?.stop()
    cleanup(dataDir)
  })

  it('the selected pair is relay in the browser, and the volunteer page and dashboard say so', async () => {
    const { room } = await createRoom(server, { algorithm: 'dpsgd', topology: 'ring', model: 'mlp', iceTransportPolicy: 'relay' })
    const ctx = await volunteerContext(browser, server.url)
    const tab = await ctx.newPage()
    tab.on('pageerror', (e) => console.error('[tab] pageerror', e.message))
    await tab.goto(`${server.url}/?room=${room}&backend=wasm&name=tab`)
    peers.push(startNodePeer(server.url, room, 'node', ['--backend', 'wasm']))

    const url = roomUrl(server, room)
    await waitFor('tab and node training over a relay pair', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return body.peers.length === 2 && body.peers.every((p) => {
        const ice = Object.values(p.links).find((l) => l.ice?.local)?.ice
        return p.step >= 10 && ice?.local === 'relay' && ice.gathered.every((t) => t === 'relay')
      }) ? body : undefined
    }, 180_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; room: ${JSON.stringify((await getJson(url)).body).slice(0, 3000)}; node: ${peers[0].output().slice(-1500)}`)
    })

    // The browser's own stats, not the app's: every connected link goes through the relay.
    const pairs = await selectedPairs(tab)
    expect(pairs.length).toBeGreaterThanOrEqual(1)
    for (const p of pairs) expect(p).toEqual({ local: 'relay', remote: 'relay' })

    await expect.poll(() => tab.getByTestId('links-connectivity').textContent(), { timeout: 30_000 }).toMatch(/Links: 1 relayed/)
    const dash = await (await browser.newContext()).newPage()
    await dash.goto(`${server.url}/room/${room}`)
    await expect.poll(async () => (await dash.getByTestId('peer-links').allTextContents()).join('|'), { timeout: 30_000 }).toMatch(/1 relayed.*\|.*1 relayed/)
  }, 300_000)
})
