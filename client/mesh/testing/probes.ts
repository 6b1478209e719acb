/**
 * Benchmark and fault-injection probes on a WebRtcMesh, through its MeshTestPort:
 *  - raw data-channel throughput (bench/transport.ts, the mesh integration tests);
 *  - raw frames written below framing (the bad-peer tests, classroom demos of what the swarm
 *    refuses).
 * Both ends of a throughput run need a probe: the receiver counts raw frames and answers the
 * sender's raw-done with what it counted.
 */
import { deadline, type PeerId, type Unsubscribe } from '../../../shared/transport'
import { MAX_FRAME_BYTES, rawFrame } from '../../../shared/wire/framing'
import { CONTROL } from '../../../shared/wire/peer-message'
import type { MeshTestPort } from '../test-port'

const RAW_THROUGHPUT_DEADLINE_MS = 120_000

export interface RawThroughput {
  bytes: number
  ms: number
  bytesPerSec: number
}

export class ThroughputProbe {
  /** Raw bytes received per peer since its last raw-done. */
  private readonly received = new Map<PeerId, number>()
  private readonly acks = new Map<number, (received: number) => void>()
  private run = 0
  private readonly untap: Unsubscribe

  constructor(private readonly port: MeshTestPort) {
    this.untap = port.tap({
      rawFrame: (peer, bytes) => this.received.set(peer, (this.received.get(peer) ?? 0) + bytes),
      control: (peer, m) => {
        if (m.kind === CONTROL.rawDone.kind) {
          const received = this.received.get(peer) ?? 0
          this.received.delete(peer)
          port.sendControl(peer, { kind: CONTROL.rawAck.kind, meta: { run: m.meta.run, received } }).catch(() => {})
        } else if (m.kind === CONTROL.rawAck.kind) {
          this.acks.get(m.meta.run)?.(m.meta.received)
        }
      },
    })
  }

  /**
   * Raw data-channel throughput to `peer`: `bytes` in raw 64 KiB chunks with the same
   * backpressure as send(), timed until the receiver acknowledges having counted them all
   * (ordered channel, so the ack follows the last chunk).
   */
  async measure(peer: PeerId, bytes: number, signal?: AbortSignal): Promise<RawThroughput> {
    // Named bound so a vanished peer cannot hang a benchmark (its ack would never come).
    const sig = signal ?? deadline('mesh.raw-throughput', RAW_THROUGHPUT_DEADLINE_MS)
    await this.port.connect(peer, sig)
    const run = ++this.run
    const acked = new Promise<number>((resolve, reject) => {
      this.acks.set(run, resolve)
      sig.addEventListener('abort', () => reject(sig.reason), { once: true })
    })
    const t0 = performance.now()
    let sent = 0
    function* chunks(): Generator<Uint8Array> {
      while (sent < bytes) {
        const f = rawFrame(Math.min(MAX_FRAME_BYTES, bytes - sent))
        yield f
        sent += f.byteLength
      }
    }
    await this.port.writeFrames(peer, chunks(), sig)
    await this.port.sendControl(peer, { kind: CONTROL.rawDone.kind, meta: { run, bytes: sent } }, sig)
    const received = await acked
    this.acks.delete(run)
    const ms = performance.now() - t0
    if (received !== sent) throw new Error(`raw throughput: sent ${sent} bytes, peer counted ${received}`)
    return { bytes: sent, ms, bytesPerSec: sent / (ms / 1000) }
  }

  close(): void {
    this.untap()
  }
}

/**
 * Fault injection: writes `frames` straight onto the data channel to `peer`, bypassing framing
 * and encoding (see MeshTestPort.writeFrames).
 */
export function writeRawFrames(port: MeshTestPort, peer: PeerId, frames: readonly Uint8Array[], signal?: AbortSignal): Promise<void> {
  return port.writeFrames(peer, frames, signal)
}

/** Garbage of frame-like sizes onto every open link, every `everyMs`, until stopped. */
export function sprayGarbage(port: MeshTestPort, everyMs = 200): () => void {
  const timer = setInterval(() => {
    for (const peer of port.connectedPeers()) {
      // Random bytes of frame-like sizes: some start with a plausible magic by chance, most not.
      const frames = [1, 64, 4096].map((n) => Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 256)))
      writeRawFrames(port, peer, frames).catch(() => {})
    }
  }, everyMs)
  timer.unref?.()
  return () => clearInterval(timer)
}
