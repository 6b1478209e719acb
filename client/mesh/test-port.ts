import type { Mailbox } from '../../shared/mailbox'
import type { Envelope, PeerId, Unsubscribe } from '../../shared/transport'
import type { ControlMessage } from '../../shared/wire/peer-message'

/** Link-level diagnostics for tests and the benchmark report. */
export interface MeshDiagnostics {
  links: PeerId[]
  connected: PeerId[]
  /** An upper bound on the queue before each send (a reading, or a reading plus frames queued since). */
  peakBufferedAmount: number
  highWaterMark: number
  framesSent: number
  bufferedReads: number
  dropped: Mailbox['dropped']
}

/** What a test or benchmark may watch on incoming links. */
export interface MeshTap {
  /** A raw benchmark frame of `bytes` arrived from `peer` (counted in stats, otherwise ignored). */
  rawFrame?(peer: PeerId, bytes: number): void
  /** A control message the mesh itself has no use for (the throughput probe's raw-done / raw-ack). */
  control?(peer: PeerId, m: ControlMessage): void
}

/**
 * The narrow way into a WebRtcMesh for benchmarks and fault injection (client/mesh/testing/).
 * Production code never calls it: algorithms see only the Mesh interface.
 */
export interface MeshTestPort {
  connectedPeers(): PeerId[]
  diagnostics(): MeshDiagnostics
  /** Opens (or reuses) the link to `peer` and waits for it like send() does. */
  connect(peer: PeerId, signal?: AbortSignal): Promise<void>
  /**
   * Writes `frames` straight onto the data channel to `peer`, bypassing framing and encoding,
   * with send()'s backpressure; pulled one at a time, so a generator can produce them lazily.
   * Queued behind this link's earlier sends, so they may land between two messages but never
   * inside one.
   */
  writeFrames(peer: PeerId, frames: Iterable<Uint8Array>, signal?: AbortSignal): Promise<void>
  /** Sends a mesh control message on the current link to `peer`. */
  sendControl(peer: PeerId, m: ControlMessage, signal?: AbortSignal): Promise<void>
  tap(t: MeshTap): Unsubscribe
  /** Hands `e` to the mesh's own Mailbox (its stale-epoch and duplicate dropping). */
  deliver(e: Envelope): boolean
}
