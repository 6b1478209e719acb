import { fork } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodePortMessage, encodePortMessage } from '../../client/mesh/testing/port-codec'
import type { ChildToParent, PeerInit } from '../../client/mesh/testing/mesh-peer-core'
import { childProcessPort, pollUntil, RemoteMesh, remoteHarness, type PeerPort } from '../../client/mesh/testing/remote-mesh'
import { describeMeshCompliance } from '../../shared/testing/mesh-compliance'
import { deadline } from '../../shared/transport'
import { volunteerContext } from '../support/browser'
import { e2eEnvironment } from '../support/e2e'

/**
 * The Mesh compliance suite (shared/testing/mesh-compliance.ts, also run over the in-memory mesh
 * and over both Node WebRTC stacks in client/mesh/webrtc-mesh.int.test.ts) with every peer a
 * headless Chromium page: WebRtcMesh over the browser's own RTCPeerConnection, bundled by the
 * app's Vite build (client/testing/mesh-peer.html), signaled by the real server. Plus one mixed
 * Chromium ↔ Node link. Inside the loopback-only namespace, like every e2e test.
 */

type PageGlobals = { __meshPeer?: { handle(s: string): Promise<void> } }

const env = e2eEnvironment()
let roomSeq = 0

/** One mesh test peer in its own browser context (own WebRTC stack, as separate tabs of separate people). */
async function pagePeer(init: PeerInit): Promise<RemoteMesh> {
  const vctx = await volunteerContext(env.browser, env.server.url)
  const page = await vctx.newPage()
  page.on('pageerror', (e) => console.error('[mesh page] pageerror', e.message))
  let deliver: ((m: ChildToParent) => void) | null = null
  const early: ChildToParent[] = []
  await page.exposeFunction('__meshEmit', (s: string) => {
    const m = decodePortMessage<ChildToParent>(s)
    if (deliver) deliver(m)
    else early.push(m)
  })
  let closed = false
  const exited = new Promise<void>((r) => page.once('close', () => {
    closed = true
    r()
  }))
  await page.goto(`${env.server.url}/testing/mesh-peer.html`)
  await page.waitForFunction(() => !!(window as unknown as PageGlobals).__meshPeer)
  const port: PeerPort = {
    post: (m) => {
      if (closed) return
      // CDP runs these in order; the promise settles when the handler does (a send: when sent).
      page.evaluate((s) => (window as unknown as PageGlobals).__meshPeer!.handle(s), encodePortMessage(m)).catch(() => {})
    },
    onMessage: (cb) => {
      deliver = cb
      for (const m of early.splice(0)) cb(m)
    },
    exited,
    // Closing the context is a tab vanishing: no bye, links drop, the server sees the socket go.
    kill: () => void vctx.close().catch(() => {}),
    alive: () => !closed,
  }
  return new RemoteMesh(port, init)
}

function nodePeer(init: PeerInit): RemoteMesh {
  const child = fork(join(process.cwd(), 'client/mesh/testing/mesh-peer-process.ts'), [], {
    execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new RemoteMesh(childProcessPort(child), init)
}

/** n peers in a fresh room, joined in order (stable roster order); resolves once all see everyone. */
async function swarm(kinds: readonly ('page' | 'node')[]): Promise<RemoteMesh[]> {
  const room = `mesh-browser-${++roomSeq}`
  const peers: RemoteMesh[] = []
  try {
    for (const k of kinds) {
      const init: PeerInit = { url: env.server.url, room }
      const p = k === 'page' ? await pagePeer(init) : nodePeer(init)
      peers.push(p)
      await p.ready
    }
    await pollUntil('swarm.roster', () => peers.every((p) => p.membership().peers.length === kinds.length), 15_000)
  } catch (e) {
    await Promise.all(peers.map((p) => p.shutdown()))
    throw e
  }
  return peers
}

describeMeshCompliance('WebRtcMesh (headless Chromium pages, browser WebRTC, real signaling server)', async (n) =>
  remoteHarness(await swarm(Array.from({ length: n }, () => 'page' as const))))

describe('WebRtcMesh between a Chromium page and a Node peer', () => {
  it('moves a 4 MB model both ways over one link, byte for byte, with matching byte counts', async () => {
    const [a, b] = await swarm(['page', 'node'])
    try {
      const d = 1_000_000
      const x = new Float32Array(d)
      for (let i = 0; i < d; i++) x[i] = Math.sin(i * 0.01) * 3
      await a.send(b.self, { kind: 't/m', round: 1, data: x })
      const atNode = await b.receive({ kind: 't/m', from: a.self }, deadline('mixed/page-node', 30_000))
      await b.send(a.self, { kind: 't/m', round: 2, data: atNode.data! })
      const atPage = await a.receive({ kind: 't/m', from: b.self }, deadline('mixed/node-page', 30_000))
      expect(atPage.round).toBe(2)
      expect(Buffer.from(atPage.data!.buffer, atPage.data!.byteOffset, atPage.data!.byteLength).equals(Buffer.from(x.buffer))).toBe(true)
      const [sa, sb] = [await a.remoteStats(), await b.remoteStats()]
      expect(sb.perLink[a.self].bytesReceived).toBe(sa.perLink[b.self].bytesSent)
      expect(sa.perLink[b.self].bytesReceived).toBe(sb.perLink[a.self].bytesSent)
      expect(sa.perLink[b.self].bytesSent).toBeGreaterThan(4e6)
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })
})
