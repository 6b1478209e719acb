import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeMeshCompliance } from '../../shared/testing/mesh-compliance'
import { LINK_PROFILE_TABLE } from '../../shared/link-conditions'
import { deadline, isDeadline } from '../../shared/transport'
import { FRAME_FIXED_BYTES, MAX_FRAME_BYTES } from '../../shared/wire/framing'
import { codecFor } from '../../shared/wire/codec'
import { startServer, type RunningServer } from '../../signaling-server/server'
import type { NodeWebRtcStack } from './node-webrtc'
import type { PeerInit } from './testing/mesh-peer-core'
import { childProcessPort, pollUntil, RemoteMesh, remoteHarness } from './testing/remote-mesh'

/**
 * WebRtcMesh over REAL WebRTC between peers in SEPARATE Node processes, signaled by the real
 * signaling server on port 0. The compliance suite runs over both Node stacks (@roamhq/wrtc and
 * node-datachannel, client/mesh/node-webrtc.ts) and one mixed pair; the transport-specific tests
 * below run over wrtc, plus backpressure over node-datachannel. Run inside the loopback-only
 * namespace:
 *   sh tools/netns-run.sh npx vitest run --project integration client/mesh
 *
 * Each peer is client/mesh/testing/mesh-peer-process.ts; here a RemoteMesh proxies the Mesh
 * interface over IPC. The child forwards every envelope its WebRtcMesh delivered (after the
 * mesh's own validation, duplicate and stale-epoch dropping), and the proxy's receive()/discard()
 * run on the same shared Mailbox class the mesh itself uses.
 */

const PEER_SCRIPT = fileURLToPath(new URL('./testing/mesh-peer-process.ts', import.meta.url))

/** Per-stack peer options. node-datachannel binds loopback so it stays there even without the netns. */
const STACK: Record<NodeWebRtcStack, PeerInit['webrtc']> = {
  wrtc: { stack: 'wrtc' },
  'node-datachannel': { stack: 'node-datachannel', bindAddress: '127.0.0.1' },
}

let server: RunningServer
let dataDir: string
let roomSeq = 0

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-mesh-int-'))
  server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: join(dataDir, 'dist') })
})

afterAll(async () => {
  await server?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

function forkPeer(): ChildProcess {
  return fork(PEER_SCRIPT, [], {
    execArgv: ['--import', 'tsx'],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
}

/** n peers in a fresh room, each its own process; resolves once all see the full roster. */
async function swarm(n: number, extra: Partial<PeerInit> | ((i: number) => Partial<PeerInit>) = {}): Promise<RemoteMesh[]> {
  const room = `mesh-int-${process.pid}-${++roomSeq}`
  // Start all processes at once (loading tsx and a WebRTC stack is most of a test's time; the
  // 'init' message waits in the IPC channel until the child listens), but join in order so the
  // roster order is stable.
  const children = Array.from({ length: n }, forkPeer)
  const peers: RemoteMesh[] = []
  try {
    for (let i = 0; i < n; i++) {
      const p = new RemoteMesh(childProcessPort(children[i]), { url: server.url, room, ...(typeof extra === 'function' ? extra(i) : extra) })
      peers.push(p)
      await p.ready
    }
    await pollUntil('swarm.roster', () => peers.every((p) => p.membership().peers.length === n))
  } catch (e) {
    for (const c of children) c.kill('SIGKILL')
    throw e
  }
  return peers
}

for (const stack of ['wrtc', 'node-datachannel'] as const) {
  describeMeshCompliance(`WebRtcMesh (${stack}, separate processes, real signaling server)`, async (n) =>
    remoteHarness(await swarm(n, { webrtc: STACK[stack] })))
}

describe('WebRtcMesh across stacks (wrtc <-> node-datachannel)', () => {
  it('exchanges models both ways over one mixed link, byte for byte', async () => {
    const [a, b] = await swarm(2, (i) => ({ webrtc: STACK[i === 0 ? 'wrtc' : 'node-datachannel'] }))
    try {
      const d = 1_000_000
      const x = new Float32Array(d)
      for (let i = 0; i < d; i++) x[i] = Math.sin(i * 0.01) * 3
      await a.send(b.self, { kind: 't/m', round: 1, data: x })
      const atB = await b.receive({ kind: 't/m', from: a.self }, deadline('int/mixed-ab', 20_000))
      await b.send(a.self, { kind: 't/m', round: 2, data: atB.data! })
      const atA = await a.receive({ kind: 't/m', from: b.self }, deadline('int/mixed-ba', 20_000))
      expect(atA.round).toBe(2)
      expect(Buffer.from(atA.data!.buffer, atA.data!.byteOffset, atA.data!.byteLength)
        .equals(Buffer.from(x.buffer))).toBe(true)
      const [sa, sb] = [await a.remoteStats(), await b.remoteStats()]
      expect(sb.perLink[a.self].bytesReceived).toBe(sa.perLink[b.self].bytesSent)
      expect(sa.perLink[b.self].bytesReceived).toBe(sb.perLink[a.self].bytesSent)
      expect([sa.rejected[b.self] ?? 0, sb.rejected[a.self] ?? 0]).toEqual([0, 0])
      for (const [x, y] of [[a, b], [b, a]] as const)
        expect(x.logs.filter((l) => l.event === 'mesh.link-open' && l.detail?.peer === y.self)).toHaveLength(1)
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })
})

// The Mesh contract holds with frames held by the emulation (deadlines, aborts, leaving, byes).
describeMeshCompliance('WebRtcMesh (wrtc, link: lossy)', async (n) => remoteHarness(await swarm(n, { webrtc: STACK.wrtc, link: 'lossy' })))

describe('WebRtcMesh with emulated link conditions', () => {
  it('slow: round trips take at least the profile\'s RTT and a model moves no faster than the uplink cap, intact', async () => {
    const [a, b] = await swarm(2, { webrtc: STACK.wrtc, link: 'slow' })
    try {
      const p = LINK_PROFILE_TABLE.slow
      // Warm the link up (connect, hello) before timing.
      await a.send(b.self, { kind: 't/ping', round: 0 })
      await b.receive({ kind: 't/ping', round: 0 }, deadline('int/warm', 20_000))
      const t0 = performance.now()
      await a.send(b.self, { kind: 't/ping', round: 1 })
      await b.receive({ kind: 't/ping', round: 1 }, deadline('int/ping', 20_000))
      await b.send(a.self, { kind: 't/ping', round: 2 })
      await a.receive({ kind: 't/ping', round: 2 }, deadline('int/pong', 20_000))
      // Lower bounds only: a loaded machine may add time, never take it away.
      expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * (p.oneWayMs - p.jitterMs))
      const d = 500_000
      const x = new Float32Array(d).map((_, i) => (i % 977) * 0.25)
      const t1 = performance.now()
      await a.send(b.self, { kind: 't/model', round: 3, data: x })
      const e = await b.receive({ kind: 't/model', round: 3 }, deadline('int/model', 30_000))
      const ms = performance.now() - t1
      expect(Buffer.from(e.data!.buffer, e.data!.byteOffset, e.data!.byteLength).equals(Buffer.from(x.buffer))).toBe(true)
      expect(ms).toBeGreaterThanOrEqual(0.85 * (d * 4 / p.uplinkBytesPerSec!) * 1000)
      expect((await b.remoteStats()).rejected[a.self] ?? 0).toBe(0)
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })
})

describe('WebRtcMesh over real WebRTC', () => {
  // Backpressure leans on each stack's bufferedAmount / 'bufferedamountlow', so both stacks run it.
  it.each(['wrtc', 'node-datachannel'] as const)('moves a 25 MB model with backpressure and counts data-channel bytes per link on both ends (%s)', async (stack) => {
    const [a, b] = await swarm(2, { webrtc: STACK[stack] })
    try {
      const d = Math.ceil(25e6 / 4)
      const x = new Float32Array(d)
      for (let i = 0; i < d; i++) x[i] = (i % 1000) * 0.5 - 250
      await a.send(b.self, { kind: 't/model', round: 3, data: x })
      const e = await b.receive({ kind: 't/model' }, deadline('int/model', 60_000))
      expect(e.data!.length).toBe(d)
      expect(e.data![999]).toBe(249.5)
      const sa = await a.remoteStats()
      const sb = await b.remoteStats()
      expect(sa.perLink[b.self].bytesSent).toBeGreaterThan(d * 4)
      // Everything a sent, b received (hello + model), byte for byte.
      expect(sb.perLink[a.self].bytesReceived).toBe(sa.perLink[b.self].bytesSent)
      expect(sb.rejected[a.self] ?? 0).toBe(0)
      // Backpressure: the queue never grew past the high-water mark plus one frame.
      expect(sa.peakBufferedAmount).toBeGreaterThan(0)
      expect(sa.peakBufferedAmount).toBeLessThanOrEqual(sa.highWaterMark + MAX_FRAME_BYTES)
      // …while asking the channel for its queue far less often than once per frame (each ask is a
      // blocking call into the WebRTC stack): only when the bound since the last reading reaches the mark.
      expect(sa.framesSent).toBeGreaterThan(d * 4 / MAX_FRAME_BYTES)
      expect(sa.bufferedReads).toBeGreaterThan(0)
      expect(sa.bufferedReads * 2).toBeLessThan(sa.framesSent)
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })

  it.each(['fp16', 'int8'] as const)('applies %s compression on the wire within its error bound', async (compression) => {
    const [a, b] = await swarm(2, { compression })
    try {
      const d = 100_000
      const x = new Float32Array(d)
      for (let i = 0; i < d; i++) x[i] = Math.sin(i)
      await a.send(b.self, { kind: 't/c', round: 0, data: x })
      const e = await b.receive({ kind: 't/c' }, deadline('int/compressed', 20_000))
      let maxErr = 0
      for (let i = 0; i < d; i++) maxErr = Math.max(maxErr, Math.abs(e.data![i] - x[i]))
      expect(maxErr).toBeLessThanOrEqual(compression === 'fp16' ? 1e-3 : 1 / 127)
      // …and bit for bit the codec's round trip, which is what WebRtcMesh.wireImage applies.
      const codec = codecFor(compression)
      const image = codec.decode(codec.encode(x), d)
      expect(image.ok && Buffer.from(image.data.buffer).equals(Buffer.from(e.data!.buffer, e.data!.byteOffset, e.data!.byteLength))).toBe(true)
      const s = await a.remoteStats()
      expect(s.perLink[b.self].bytesSent).toBeLessThan(d * (compression === 'fp16' ? 2.1 : 1.1))
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })

  it('rejects NaN, garbage frames and wrong-schema messages, counts them and still delivers good ones', async () => {
    const [a, b, c] = await swarm(3, (i) => (i === 2 ? { schemaHash: 'other-schema' } : {}))
    try {
      const nan = new Float32Array(10)
      nan[3] = NaN
      await a.send(b.self, { kind: 't/bad', round: 0, data: nan })
      const junk = new Uint8Array(1000).fill(7)
      // A first frame declaring 256 MiB (over the 64 MiB default cap): rejected before buffering.
      const huge = new Uint8Array(FRAME_FIXED_BYTES + 10)
      const dv = new DataView(huge.buffer)
      dv.setUint32(0, 0x46575354, true); dv.setUint8(4, 1); dv.setUint16(6, 10, true)
      dv.setUint32(8, 77, true); dv.setUint32(12, 0, true); dv.setUint32(16, 4097, true); dv.setUint32(20, 1 << 28, true)
      await a.garbage(b.self, [junk, huge])
      await c.send(b.self, { kind: 't/wrong-schema', round: 0, data: new Float32Array(4) })
      await a.send(b.self, { kind: 't/good', round: 1, data: new Float32Array([1, 2, 3]) })
      const good = await b.receive({ kind: 't/good' }, deadline('int/good', 10_000))
      expect(Array.from(good.data!)).toEqual([1, 2, 3])
      await pollUntil('int/rejected', () => b.logs.filter((l) => l.event === 'mesh.rejected').length >= 4)
      const s = await b.remoteStats()
      expect(s.rejected[a.self]).toBe(3)
      // c's hello and its message both carry the wrong schema hash.
      expect(s.rejected[c.self]).toBe(2)
      await expect(b.receive({ kind: ['t/bad', 't/wrong-schema'] }, deadline('int/none', 200))).rejects.toSatisfy(isDeadline)
      expect(b.logs.some((l) => l.event === 'mesh.rejected' && String(l.detail?.reason).includes('exceeds maxMessageBytes'))).toBe(true)
      // The third rejection from a made b report it to the server as suspect.
      expect(b.logs.filter((l) => l.event === 'mesh.suspect').map((l) => l.detail?.peer)).toEqual([a.self])
    } finally {
      await Promise.all([a.shutdown(), b.shutdown(), c.shutdown()])
    }
  })

  it('rejects a send with PeerUnavailableError once the peer has left, and reuses the link across rounds', async () => {
    const [a, b, c] = await swarm(3)
    try {
      for (let r = 0; r < 5; r++) await a.send(b.self, { kind: 't/r', round: r })
      for (let r = 0; r < 5; r++) await b.receive({ kind: 't/r', round: r }, deadline('int/rounds', 5000))
      const opened = a.logs.filter((l) => l.event === 'mesh.link-open' && l.detail?.peer === b.self).length
      expect(opened).toBe(1)
      await c.shutdown()
      await pollUntil('int/left', () => a.membership().peers.length === 2)
      const err = await a.send(c.self, { kind: 't/x', round: 0 }).catch((e: unknown) => e)
      expect((err as Error).name).toBe('PeerUnavailableError')
    } finally {
      await Promise.all([a.shutdown(), b.shutdown(), c.shutdown()])
    }
  })

  it('avoids glare when both sides want each other, and keeps unwanted links in a bounded LRU pool', async () => {
    const [a, b, c, d] = await swarm(4, { warmLinks: 1 })
    try {
      a.want([b.self])
      b.want([a.self])
      await pollUntil('int/ab', () => a.logs.some((l) => l.event === 'mesh.link-open' && l.detail?.peer === b.self)
        && b.logs.some((l) => l.event === 'mesh.link-open' && l.detail?.peer === a.self))
      b.want([]) // otherwise b would re-dial a after the eviction below
      a.want([c.self])
      await pollUntil('int/ac', () => a.logs.some((l) => l.event === 'mesh.link-open' && l.detail?.peer === c.self))
      expect((await a.remoteStats()).links.sort()).toEqual([b.self, c.self].sort()) // b kept warm
      a.want([d.self])
      await pollUntil('int/ad', () => a.logs.some((l) => l.event === 'mesh.link-open' && l.detail?.peer === d.self))
      // Pool of 1: c (most recently used) stays warm, b is evicted.
      expect((await a.remoteStats()).links.sort()).toEqual([c.self, d.self].sort())
      // One link per pair, whoever asked first.
      for (const [x, y] of [[a, b], [b, a]] as const)
        expect(x.logs.filter((l) => l.event === 'mesh.link-open' && l.detail?.peer === y.self)).toHaveLength(1)
    } finally {
      await Promise.all([a, b, c, d].map((p) => p.shutdown()))
    }
  })

  it('measures raw data-channel throughput with the same framing limit', async () => {
    const [a, b] = await swarm(2)
    try {
      await a.send(b.self, { kind: 't/warm', round: 0 })
      const r = await a.raw(b.self, 4 * 1024 * 1024 + 123)
      expect(r.bytes).toBe(4 * 1024 * 1024 + 123)
      expect(r.bytesPerSec).toBeGreaterThan(0)
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()])
    }
  })
})
