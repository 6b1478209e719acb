import { z } from 'zod'
import { PROTOCOL_VERSION } from '../protocol/version'

/**
 * Data-channel framing. Every WebRTC stack here has a hard 256 KiB message limit and each fails
 * differently above it (Chromium throws, wrtc closes the channel),
 * so messages are cut into frames of at most MAX_FRAME_BYTES = 64 KiB — a quarter of the hard
 * limit, which leaves room for SCTP/DTLS overhead and costs nothing in throughput (16–256 KiB
 * chunks measured the same).
 *
 * Frame layout (little-endian), FRAME_FIXED_BYTES = 24:
 *   0  u32 magic 'TSWF' (or 'TSWR' for raw benchmark chunks, never reassembled)
 *   4  u8  FRAME_VERSION
 *   5  u8  reserved (0)
 *   6  u16 headerLen — bytes of header JSON after the fixed part (first frame only, else 0)
 *   8  u32 msgId     — per-link message counter
 *   12 u32 index     — 0 … count-1
 *   16 u32 count     — frames in this message
 *   20 u32 total     — payload bytes of the whole message
 * The first frame carries the JSON header then the start of the payload; later frames carry
 * payload only. The split is deterministic, so the receiver can check every frame's size.
 */

export const MAX_FRAME_BYTES = 64 * 1024
/** The data-channel message size every stack here accepts at most (documented above). */
export const HARD_CHANNEL_LIMIT_BYTES = 256 * 1024
export const FRAME_FIXED_BYTES = 24
/** The header JSON must fit comfortably in the first frame. */
export const MAX_HEADER_BYTES = 16 * 1024
export const FRAME_VERSION = 1
export const FRAME_MAGIC = 0x46575354 // 'TSWF' read as little-endian u32
export const RAW_MAGIC = 0x52575354 // 'TSWR'

const FIRST_CAPACITY_BASE = MAX_FRAME_BYTES - FRAME_FIXED_BYTES

export const DTYPES = ['none', 'fp32', 'fp16', 'int8'] as const
export type Dtype = (typeof DTYPES)[number]

/** Versioned message header carried in the first frame (validated before anything is buffered). */
export const wireHeaderSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  kind: z.string().min(1).max(128),
  epoch: z.number().int().min(0),
  round: z.number().finite(),
  clock: z.number().finite().min(0),
  schemaHash: z.string().max(64),
  meta: z.record(z.string(), z.unknown()).optional(),
  dtype: z.enum(DTYPES),
  /** Number of Float32 elements the payload decodes to (0 for 'none'). */
  length: z.number().int().min(0),
  /** Payload bytes; must equal the frames' declared total. */
  byteLength: z.number().int().min(0),
})
export type WireHeader = z.infer<typeof wireHeaderSchema>

export type FrameResult =
  | { type: 'message'; header: WireHeader; payload: Uint8Array }
  | { type: 'error'; reason: string }
  | { type: 'partial' }

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

function frameCount(headerLen: number, total: number): number {
  const first = FIRST_CAPACITY_BASE - headerLen
  return total <= first ? 1 : 1 + Math.ceil((total - first) / FIRST_CAPACITY_BASE)
}

function writeFixed(f: Uint8Array, magic: number, headerLen: number, msgId: number, index: number, count: number, total: number): void {
  const dv = new DataView(f.buffer, f.byteOffset, FRAME_FIXED_BYTES)
  dv.setUint32(0, magic, true)
  dv.setUint8(4, FRAME_VERSION)
  dv.setUint8(5, 0)
  dv.setUint16(6, headerLen, true)
  dv.setUint32(8, msgId >>> 0, true)
  dv.setUint32(12, index, true)
  dv.setUint32(16, count, true)
  dv.setUint32(20, total, true)
}

/**
 * Cuts one message into frames. Throws only on programmer error (header not matching the
 * payload, header too large): the sender controls both.
 */
export function encodeMessage(msgId: number, header: WireHeader, payload: Uint8Array): Uint8Array[] {
  if (header.byteLength !== payload.byteLength) throw new Error(`header.byteLength ${header.byteLength} != payload ${payload.byteLength}`)
  const h = enc.encode(JSON.stringify(header))
  if (h.byteLength > MAX_HEADER_BYTES) throw new Error(`message header is ${h.byteLength} bytes (max ${MAX_HEADER_BYTES})`)
  const total = payload.byteLength
  const count = frameCount(h.byteLength, total)
  const frames: Uint8Array[] = []
  let off = 0
  for (let i = 0; i < count; i++) {
    const hl = i === 0 ? h.byteLength : 0
    const n = Math.min(FIRST_CAPACITY_BASE - hl, total - off)
    const f = new Uint8Array(FRAME_FIXED_BYTES + hl + n)
    writeFixed(f, FRAME_MAGIC, hl, msgId, i, count, total)
    if (hl) f.set(h, FRAME_FIXED_BYTES)
    f.set(payload.subarray(off, off + n), FRAME_FIXED_BYTES + hl)
    off += n
    frames.push(f)
  }
  return frames
}

/** A raw benchmark chunk (same size limit, never reassembled; the receiver only counts it). */
export function rawFrame(bytes: number): Uint8Array {
  const n = Math.max(FRAME_FIXED_BYTES, Math.min(MAX_FRAME_BYTES, bytes))
  const f = new Uint8Array(n)
  writeFixed(f, RAW_MAGIC, 0, 0, 0, 1, n)
  return f
}

export function isRawFrame(f: Uint8Array): boolean {
  return f.byteLength >= 4 && new DataView(f.buffer, f.byteOffset, 4).getUint32(0, true) === RAW_MAGIC
}

export interface AssemblerOptions {
  /** Largest accepted payload (room config maxMessageBytes). */
  maxMessageBytes: number
  /** Expected model-schema hash; messages with another one are rejected on their first frame. */
  schemaHash: () => string
}

interface InProgress {
  msgId: number
  header: WireHeader
  buf: Uint8Array
  offset: number
  next: number
  count: number
  headerLen: number
}

/**
 * Reassembles frames from ONE link (data channels are reliable and ordered, so any gap or
 * reordering means a broken or hostile sender). Never throws. Memory is bounded: the buffer is
 * allocated once, after the first frame's declared size passed the cap and the header passed
 * validation (including the schema hash). After an error, the rest of that message's frames
 * are dropped silently so one bad message counts as one rejection.
 */
export class FrameAssembler {
  private cur: InProgress | null = null
  /** msgId of a message already rejected; its remaining frames are skipped. */
  private poisoned: number | null = null

  constructor(private readonly opts: AssemblerOptions) {}

  /** True while a message is half-assembled (for tests and diagnostics). */
  get busy(): boolean {
    return this.cur !== null
  }

  reset(): void {
    this.cur = null
    this.poisoned = null
  }

  push(frame: Uint8Array): FrameResult {
    try {
      return this.pushUnsafe(frame)
    } catch (e) {
      // Defensive: a bug here must not escape into an event handler.
      this.cur = null
      return { type: 'error', reason: `frame handling failed: ${(e as Error)?.message ?? e}` }
    }
  }

  private fail(reason: string, msgId: number | null): FrameResult {
    this.cur = null
    this.poisoned = msgId
    return { type: 'error', reason }
  }

  private pushUnsafe(frame: Uint8Array): FrameResult {
    if (!(frame instanceof Uint8Array) || frame.byteLength < FRAME_FIXED_BYTES) return this.fail('frame shorter than its fixed header', null)
    if (frame.byteLength > MAX_FRAME_BYTES) return this.fail(`frame of ${frame.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`, null)
    const dv = new DataView(frame.buffer, frame.byteOffset, FRAME_FIXED_BYTES)
    if (dv.getUint32(0, true) !== FRAME_MAGIC) return this.fail('bad frame magic', null)
    if (dv.getUint8(4) !== FRAME_VERSION) return this.fail(`unsupported frame version ${dv.getUint8(4)}`, null)
    const headerLen = dv.getUint16(6, true)
    const msgId = dv.getUint32(8, true)
    const index = dv.getUint32(12, true)
    const count = dv.getUint32(16, true)
    const total = dv.getUint32(20, true)

    if (this.poisoned !== null && msgId === this.poisoned) return { type: 'partial' }
    this.poisoned = null

    if (this.cur && msgId !== this.cur.msgId) {
      // A new message began before the previous one completed: frames went missing.
      const prev = this.cur.msgId
      return this.fail(`missing frames: message ${prev} incomplete (${this.cur.next}/${this.cur.count}) when ${msgId} began`, msgId)
    }

    if (!this.cur) {
      if (index !== 0) return this.fail(`out-of-order frame: index ${index} without a first frame`, msgId)
      if (total > this.opts.maxMessageBytes)
        return this.fail(`message of ${total} bytes exceeds maxMessageBytes ${this.opts.maxMessageBytes}`, msgId)
      if (headerLen === 0 || headerLen > MAX_HEADER_BYTES || FRAME_FIXED_BYTES + headerLen > frame.byteLength)
        return this.fail(`bad header length ${headerLen}`, msgId)
      if (count !== frameCount(headerLen, total)) return this.fail(`frame count ${count} does not match size ${total}`, msgId)
      let json: unknown
      try {
        json = JSON.parse(dec.decode(frame.subarray(FRAME_FIXED_BYTES, FRAME_FIXED_BYTES + headerLen)))
      } catch {
        return this.fail('header is not valid JSON', msgId)
      }
      const parsed = wireHeaderSchema.safeParse(json)
      if (!parsed.success) {
        const i = parsed.error.issues[0]
        return this.fail(`invalid header: ${i.path.join('.') || 'header'}: ${i.message}`, msgId)
      }
      const header = parsed.data
      if (header.byteLength !== total) return this.fail(`size mismatch: header says ${header.byteLength}, frames say ${total}`, msgId)
      const want = this.opts.schemaHash()
      if (header.schemaHash !== want) return this.fail(`schema hash ${header.schemaHash || '(none)'} != ${want || '(none)'}`, msgId)
      this.cur = { msgId, header, buf: new Uint8Array(total), offset: 0, next: 0, count, headerLen }
    }

    const c = this.cur!
    if (index !== c.next) return this.fail(`out-of-order frame: got ${index}, expected ${c.next}`, msgId)
    if (count !== c.count || total !== c.buf.byteLength) return this.fail('frame count or size changed mid-message', msgId)
    if (index > 0 && headerLen !== 0) return this.fail('header bytes in a non-first frame', msgId)
    const body = frame.subarray(FRAME_FIXED_BYTES + (index === 0 ? c.headerLen : 0))
    const expected = Math.min(FIRST_CAPACITY_BASE - (index === 0 ? c.headerLen : 0), total - c.offset)
    if (body.byteLength !== expected) return this.fail(`size mismatch: frame ${index} carries ${body.byteLength} bytes, expected ${expected}`, msgId)
    c.buf.set(body, c.offset)
    c.offset += body.byteLength
    c.next++
    if (c.next < c.count) return { type: 'partial' }
    this.cur = null
    return { type: 'message', header: c.header, payload: c.buf }
  }
}
