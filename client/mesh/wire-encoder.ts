import type { Compression } from '../../shared/config'
import type { Envelope, MeshMessage, PeerId } from '../../shared/transport'
import { ErrorFeedback, codecFor } from '../../shared/wire/codec'
import { FrameAssembler, encodeMessage, isRawFrame, type WireHeader } from '../../shared/wire/framing'
import { fromWire, toWire, type ControlMessage } from '../../shared/wire/peer-message'

/** What the sender's side of the wire needs to know at the moment a message is encoded. */
export interface WireState {
  epoch: number
  clock: number
  schemaHash: string
}

export interface WireEncoderOptions {
  state: () => WireState
  /** The room's compression now (it may change between messages). */
  compression: () => Compression
  /** The room's cap on one message's payload, read when a link opens. */
  maxMessageBytes: () => number
  /** Expected element count per kind (e.g. paramCount for parameter messages). */
  expectedLength?: (kind: string) => number | undefined
  /** Which kinds carry increments and so get error feedback under a lossy codec. */
  errorFeedback?: (kind: string) => boolean
}

/** Where a message's id comes from: its link numbers messages in the order they go out. */
export interface MessageIds {
  takeMessageId(): number
}

/** One incoming data-channel message, once read. */
export type Inbound =
  | { type: 'partial' }
  /** A raw benchmark chunk: counted, never reassembled. */
  | { type: 'raw' }
  | { type: 'rejected'; reason: string }
  | { type: 'control'; message: ControlMessage }
  | { type: 'envelope'; envelope: Envelope }

/**
 * The mesh's side of shared/wire: messages to frames (≤ 64 KiB, with the room's codec and error
 * feedback for increment kinds), and frames back to validated envelopes, one assembler per link
 * (header schema, schema hash, sizes, finiteness, expected length).
 */
export class WireEncoder {
  private readonly ef = new Map<Compression, ErrorFeedback>()
  private readonly inbound = new WeakMap<object, FrameAssembler>()

  constructor(private readonly o: WireEncoderOptions) {}

  /**
   * The frames of one message to `to`, numbered by the link it goes out on. They are cut now,
   * synchronously: they are the copy that lets the caller reuse msg.data while the message waits
   * behind earlier ones (the fp32 codec itself does not copy).
   */
  message(to: PeerId, msg: MeshMessage, ids: MessageIds): Uint8Array[] {
    const { header, payload } = this.encode(to, msg)
    return encodeMessage(ids.takeMessageId(), header, payload)
  }

  /** The frames of one of the mesh's own control messages (never compressed). */
  control(m: ControlMessage, ids: MessageIds): Uint8Array[] {
    const { header, payload } = toWire({ kind: m.kind, round: 0, meta: m.meta }, { ...this.o.state(), compression: 'fp32' }, true)
    return encodeMessage(ids.takeMessageId(), header, payload)
  }

  /** Encodes with the room's compression (and error feedback for increment kinds). */
  private encode(to: PeerId, msg: MeshMessage): { header: WireHeader; payload: Uint8Array } {
    const compression = this.o.compression()
    const wire = toWire(msg, { ...this.o.state(), compression })
    if (msg.data && compression !== 'fp32' && this.o.errorFeedback?.(msg.kind)) {
      let ef = this.ef.get(compression)
      if (!ef) this.ef.set(compression, (ef = new ErrorFeedback(codecFor(compression))))
      const payload = ef.encode(`${to}/${msg.kind}`, msg.data)
      return { header: { ...wire.header, byteLength: payload.byteLength }, payload }
    }
    return wire
  }

  /** In place: what a receiver decodes of `data` sent as `kind` (Mesh.wireImage). */
  wireImage(kind: string, data: Float32Array): void {
    const compression = this.o.compression()
    // Increments are sent with error feedback, whose image depends on the link: not for them.
    if (compression === 'fp32' || this.o.errorFeedback?.(kind)) return
    const codec = codecFor(compression)
    const r = codec.decode(codec.encode(data), data.length)
    if (r.ok) data.set(r.data)
  }

  /** Starts reading frames from a new link (keyed by identity: a replaced link starts afresh). */
  open(link: object): void {
    this.inbound.set(link, new FrameAssembler({
      maxMessageBytes: this.o.maxMessageBytes(),
      schemaHash: () => this.o.state().schemaHash,
    }))
  }

  /** Drops a closed link's half-assembled message. */
  close(link: object): void {
    this.inbound.get(link)?.reset()
    this.inbound.delete(link)
  }

  /** Reads one message from `link`, whose remote is `from` (stamped on the envelope). */
  read(link: object, from: PeerId, bytes: Uint8Array): Inbound {
    if (isRawFrame(bytes)) return { type: 'raw' }
    const assembler = this.inbound.get(link)
    if (!assembler) return { type: 'partial' }
    const r = assembler.push(bytes)
    if (r.type === 'partial') return r
    if (r.type === 'error') return { type: 'rejected', reason: r.reason }
    const w = fromWire(r.header, r.payload, from, { expectedLength: this.o.expectedLength })
    if (!w.ok) return { type: 'rejected', reason: w.reason }
    if (w.control) return { type: 'control', message: w.message }
    return { type: 'envelope', envelope: w.envelope }
  }
}
