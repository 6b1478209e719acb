import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { isNodeWebRtcStack, NODE_WEBRTC_STACKS, type NodeWebRtcStack } from '../client/mesh/node-webrtc'
import type { Compression } from '../shared/config'
import { benchServer, ensureNetns, load, median, writeResult } from './common'
import type { BenchEv, BenchOp } from './transport-peer'

/**
 * Issue 4 transport efficiency: on ONE pair of Node peers (separate processes, real WebRTC via
 * @roamhq/wrtc or node-datachannel, real signaling server), raw data-channel throughput vs our parameter exchange
 * (mesh.send of a Float32Array model, decoded and delivered on the other side, then acked) for
 * 1, 5 and 25 MB models with fp32 / fp16 / int8. Raw is measured with the same byte count right
 * before each size's exchanges, so drift in machine load hits both. Goal: fp32 ≥ 0.8 × raw.
 *   sh tools/netns-run.sh npx tsx bench/transport.ts [--quick] [--webrtc wrtc|node-datachannel]
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)

const PEER = fileURLToPath(new URL('./transport-peer.ts', import.meta.url))
const quick = process.argv.includes('--quick')
const webrtcArg = process.argv.includes('--webrtc') ? process.argv[process.argv.indexOf('--webrtc') + 1] : 'wrtc'

/** Omit that distributes over the union's members. */
type NoId<T> = T extends unknown ? Omit<T, 'id'> : never

class Peer {
  self = ''
  peers = 0
  private seq = 0
  private pending = new Map<number, (e: BenchEv & { ev: 'result' }) => void>()
  readonly ready: Promise<void>
  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.once('exit', (c) => reject(new Error(`bench peer exited (${c})`)))
      child.on('message', (m: BenchEv) => {
        if (m.ev === 'ready') (this.self = m.self), resolve()
        else if (m.ev === 'peers') this.peers = m.n
        else if (m.ev === 'result') this.pending.get(m.id)?.(m)
      })
    })
  }
  call<T>(op: NoId<Extract<BenchOp, { id: number }>>): Promise<T> {
    const id = ++this.seq
    return new Promise((resolve, reject) => {
      this.pending.set(id, (r) => (this.pending.delete(id), r.ok ? resolve(r.value as T) : reject(new Error(r.error))))
      this.child.send({ ...op, id } as BenchOp)
    })
  }
}

export async function runTransportBench(opts: { quick?: boolean; webrtc?: NodeWebRtcStack } = {}) {
  const webrtc = opts.webrtc ?? 'wrtc'
  const server = await benchServer()
  const room = `bench-transport-${process.pid}`
  const spawnPeer = () => new Peer(fork(PEER, [], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const a = spawnPeer()
  a.child.send({ op: 'init', url: server.url, room, webrtc } satisfies BenchOp)
  await a.ready
  const b = spawnPeer()
  b.child.send({ op: 'init', url: server.url, room, webrtc } satisfies BenchOp)
  await b.ready
  for (let i = 0; a.peers < 2 || b.peers < 2; i++) {
    if (i > 500) throw new Error('peers never saw each other')
    await new Promise((r) => setTimeout(r, 20))
  }
  const loadBefore = load()
  try {
    type Raw = { bytes: number; ms: number; bytesPerSec: number }
    type Ex = { ms: number[]; wireBytes: number[] }
    // Warm-up: connect, let SCTP's congestion window open, JIT the codecs.
    await a.call<Raw>({ op: 'raw', to: b.self, bytes: 8e6 })
    for (const c of ['fp32', 'fp16', 'int8'] as Compression[]) await a.call<Ex>({ op: 'exchange', to: b.self, floats: 1e6 / 4, compression: c, reps: 2 })
    await a.call<Raw>({ op: 'raw', to: b.self, bytes: 8e6 })

    const sizesMB = opts.quick ? [1, 5] : [1, 5, 25]
    const rows = []
    for (const mb of sizesMB) {
      const bytes = mb * 1e6
      const floats = bytes / 4
      const reps = mb >= 25 ? 2 : 3
      const raws: Raw[] = []
      for (let r = 0; r < reps; r++) raws.push(await a.call<Raw>({ op: 'raw', to: b.self, bytes }))
      const rawMBps = median(raws.map((r) => r.bytesPerSec / 1e6))
      const codecs: Record<string, unknown> = {}
      for (const c of ['fp32', 'fp16', 'int8'] as Compression[]) {
        const ex = await a.call<Ex>({ op: 'exchange', to: b.self, floats, compression: c, reps })
        const msMed = median(ex.ms)
        const modelMBps = bytes / 1e6 / (msMed / 1000)
        const wire = median(ex.wireBytes)
        codecs[c] = {
          msMedian: +msMed.toFixed(1), msAll: ex.ms.map((x) => +x.toFixed(1)),
          // Model MB/s: fp32-equivalent model bytes moved per second (what training cares about).
          modelMBps: +modelMBps.toFixed(1),
          wireBytes: wire, wireBytesPerParam: +(wire / floats).toFixed(3),
          wireMBps: +(wire / 1e6 / (msMed / 1000)).toFixed(1),
          ratioToRaw: +(modelMBps / rawMBps).toFixed(2),
          wireRatioToRaw: +(wire / 1e6 / (msMed / 1000) / rawMBps).toFixed(2),
        }
        console.log(`  ${mb} MB ${c}: ${msMed.toFixed(0)} ms, model ${modelMBps.toFixed(1)} MB/s, wire ${(wire / 1e6).toFixed(2)} MB, ratio to raw ${(modelMBps / rawMBps).toFixed(2)}`)
      }
      console.log(`  ${mb} MB raw: ${rawMBps.toFixed(1)} MB/s (median of ${reps})`)
      rows.push({ modelMB: mb, params: floats, reps, rawMBps: +rawMBps.toFixed(1), rawMsAll: raws.map((r) => +r.ms.toFixed(1)), codecs })
    }
    return { peers: `two Node processes, ${webrtc === 'wrtc' ? '@roamhq/wrtc' : 'node-datachannel'}, loopback netns`, webrtc, rows, load: { before: loadBefore, after: load() } }
  } finally {
    await Promise.race([Promise.all([a.call({ op: 'close' }), b.call({ op: 'close' })]), new Promise((r) => setTimeout(r, 3000))])
    a.child.kill('SIGKILL')
    b.child.kill('SIGKILL')
    await server.close()
  }
}

if (process.argv[1] === SCRIPT) {
  if (!isNodeWebRtcStack(webrtcArg)) {
    console.error(`--webrtc must be one of ${NODE_WEBRTC_STACKS.join(', ')}`)
    process.exit(2)
  }
  console.log(`transport: raw data channel vs parameter exchange (${webrtcArg})`)
  const r = await runTransportBench({ quick, webrtc: webrtcArg })
  // The default stack keeps the historical file names; another stack gets its own.
  const name = `transport${webrtcArg === 'wrtc' ? '' : `-${webrtcArg}`}${quick ? '-quick' : ''}`
  console.log('wrote', writeResult(name, r))
  process.exit(0)
}
