/**
 * One benchmark peer for bench/transport.ts, in its own OS process (forked with tsx and IPC).
 * Joins the room through the real signaling server and runs a real WebRtcMesh over
 * @roamhq/wrtc (or node-datachannel: init's `webrtc`, client/mesh/node-webrtc.ts). Timing happens here, next to the mesh, so IPC never sits on the measured path:
 *  - 'raw': ThroughputProbe.measure (client/mesh/testing/probes.ts: 64 KiB raw frames + ack).
 *  - 'exchange': mesh.send of a Float32Array model with the chosen codec; the receiving peer
 *    decodes it (reassembly, codec, validation, Mailbox delivery) and only then sends a small
 *    ack, so the time covers the whole parameter exchange, like the raw measure covers its ack.
 */
import type { Compression } from '../shared/config'
import { deadline } from '../shared/transport'
import { loadNodeWebRtc, type NodeWebRtcStack } from '../client/mesh/node-webrtc'
import { SignalingClient } from '../client/mesh/signaling-client'
import { ThroughputProbe } from '../client/mesh/testing/probes'
import { WebRtcMesh } from '../client/mesh/webrtc-mesh'

export type BenchOp =
  | { op: 'init'; url: string; room: string; webrtc?: NodeWebRtcStack }
  | { op: 'raw'; id: number; to: string; bytes: number }
  | { op: 'exchange'; id: number; to: string; floats: number; compression: Compression; reps: number }
  | { op: 'close'; id: number }

export type BenchEv =
  | { ev: 'ready'; self: string }
  | { ev: 'peers'; n: number }
  | { ev: 'result'; id: number; ok: boolean; value?: unknown; error?: string }

const post = (m: BenchEv) => process.send?.(m)
let mesh: WebRtcMesh | null = null
let probe: ThroughputProbe | null = null
let sig: SignalingClient | null = null
// Mutable on purpose: WebRtcMesh reads its config on every send, so one link serves all codecs.
const meshConfig: { iceServers: never[]; compression: Compression } = { iceServers: [], compression: 'fp32' }
let round = 0

async function init(url: string, room: string, stack: NodeWebRtcStack = 'wrtc'): Promise<void> {
  // node-datachannel gathers nothing inside the loopback-only netns unless bound to 127.0.0.1.
  const wrtc = await loadNodeWebRtc(stack === 'node-datachannel' ? { stack, bindAddress: '127.0.0.1' } : { stack })
  sig = new SignalingClient(url, { socket: { transports: ['websocket'] } })
  const joined = await sig.join({ room, role: 'volunteer', agent: 'node' }, deadline('bench.join', 15_000))
  await sig.enterRoster(deadline('bench.ready', 15_000))
  const m = new WebRtcMesh({ self: joined.self, signaling: sig, wrtc, schemaHash: 'bench', config: meshConfig })
  mesh = m
  // Both peers get one: the receiving side counts the raw bytes and acks them.
  probe = new ThroughputProbe(m.testPort())
  m.onMembership((x) => post({ ev: 'peers', n: x.peers.length }))
  post({ ev: 'ready', self: joined.self })
  post({ ev: 'peers', n: m.membership().peers.length })
  // Receiver side: ack each model once it has been delivered (decoded and validated).
  const forever = new AbortController().signal
  for (;;) {
    const e = await m.receive({ kind: 'bench/model' }, forever)
    void m.send(e.from, { kind: 'bench/ack', round: e.round, meta: { len: e.data?.length ?? -1 } }).catch(() => {})
  }
}

async function exchange(to: string, floats: number, compression: Compression, reps: number) {
  const m = mesh!
  meshConfig.compression = compression
  const x = new Float32Array(floats)
  // Model-like values (small, varied) so fp16/int8 do real work.
  for (let i = 0; i < floats; i++) x[i] = Math.sin(i * 0.37) * 0.1
  const ms: number[] = []
  const sendMs: number[] = []
  const wire: number[] = []
  for (let r = 0; r < reps; r++) {
    const rr = ++round
    const before = m.stats().perLink[to]?.bytesSent ?? 0
    const dl = deadline('bench.exchange', 120_000)
    const t0 = performance.now()
    const ack = m.receive({ kind: 'bench/ack', round: rr, from: to }, dl)
    await m.send(to, { kind: 'bench/model', round: rr, data: x }, dl)
    const sentAt = performance.now()
    const e = await ack
    const t1 = performance.now()
    if ((e.meta as { len?: number })?.len !== floats) throw new Error(`receiver got ${(e.meta as { len?: number })?.len} floats, expected ${floats}`)
    ms.push(t1 - t0)
    // Until the last frame was handed to the data channel: a slow exchange is slow in our send
    // path (encoding, backpressure) when this is large, on the wire or the receiver when not.
    sendMs.push(sentAt - t0)
    wire.push((m.stats().perLink[to]?.bytesSent ?? 0) - before)
  }
  meshConfig.compression = 'fp32'
  return { ms, sendMs, wireBytes: wire }
}

process.on('message', (msg: BenchOp) => {
  void (async () => {
    if (msg.op === 'init') {
      init(msg.url, msg.room, msg.webrtc).catch((e) => {
        console.error('bench peer init failed', e)
        process.exit(2)
      })
      return
    }
    const id = msg.id
    try {
      const value = msg.op === 'raw' ? await probe!.measure(msg.to, msg.bytes)
        : msg.op === 'exchange' ? await exchange(msg.to, msg.floats, msg.compression, msg.reps)
        : await (async () => { probe?.close(); await mesh?.close(); sig?.close() })()
      post({ ev: 'result', id, ok: true, value })
    } catch (e) {
      post({ ev: 'result', id, ok: false, error: String((e as Error)?.stack ?? e) })
    }
  })()
})
process.on('disconnect', () => process.exit(0))
