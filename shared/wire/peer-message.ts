import { z } from 'zod'
import type { Compression } from '../config'
import { PROTOCOL_VERSION } from '../protocol/version'
import type { Envelope, MeshMessage, PeerId } from '../transport'
import { codecFor } from './codec'
import type { Dtype, WireHeader } from './framing'

/**
 * Data-channel messages: a MeshMessage plus the sender's epoch and clock, mapped to a framing
 * header and payload bytes and back. Kinds starting with CONTROL_PREFIX belong to the mesh
 * itself (hello, bye, throughput probes) and are never delivered to algorithms; algorithms may
 * not send them.
 */

export const CONTROL_PREFIX = 'mesh/'

export const helloMetaSchema = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  schemaHash: z.string().max(64),
  /** Sender's membership epoch when the link opened (diagnostics). */
  epoch: z.number().int().min(0),
})

export const rawDoneMetaSchema = z.object({ run: z.number().int().min(0), bytes: z.number().int().min(0) })
export const rawAckMetaSchema = z.object({ run: z.number().int().min(0), received: z.number().int().min(0) })

/** Control messages, string-tagged; each has a zod schema for its meta. */
export const CONTROL = {
  hello: { kind: 'mesh/hello', meta: helloMetaSchema },
  bye: { kind: 'mesh/bye', meta: z.object({ reason: z.string().max(200) }) },
  rawDone: { kind: 'mesh/raw-done', meta: rawDoneMetaSchema },
  rawAck: { kind: 'mesh/raw-ack', meta: rawAckMetaSchema },
} as const

export type ControlMessage =
  | { kind: 'mesh/hello'; meta: z.infer<typeof helloMetaSchema> }
  | { kind: 'mesh/bye'; meta: { reason: string } }
  | { kind: 'mesh/raw-done'; meta: z.infer<typeof rawDoneMetaSchema> }
  | { kind: 'mesh/raw-ack'; meta: z.infer<typeof rawAckMetaSchema> }

export function isControlKind(kind: string): boolean {
  return kind.startsWith(CONTROL_PREFIX)
}

export interface WireContext {
  epoch: number
  clock: number
  schemaHash: string
  compression: Compression
}

/** Sender side. Throws on programmer error only (control kind from an algorithm, unserialisable meta). */
export function toWire(msg: MeshMessage, ctx: WireContext, allowControl = false): { header: WireHeader; payload: Uint8Array } {
  if (!allowControl && isControlKind(msg.kind)) throw new Error(`kind '${msg.kind}' is reserved for the mesh`)
  let dtype: Dtype = 'none'
  let payload: Uint8Array = new Uint8Array(0)
  let length = 0
  if (msg.data) {
    dtype = ctx.compression
    payload = codecFor(ctx.compression).encode(msg.data)
    length = msg.data.length
  }
  const header: WireHeader = {
    v: PROTOCOL_VERSION,
    kind: msg.kind,
    epoch: ctx.epoch,
    round: msg.round,
    clock: Math.max(0, ctx.clock),
    schemaHash: ctx.schemaHash,
    ...(msg.meta ? { meta: JSON.parse(JSON.stringify(msg.meta)) as Record<string, unknown> } : {}),
    dtype,
    length,
    byteLength: payload.byteLength,
  }
  return { header, payload }
}

export type FromWireResult =
  | { ok: true; control: false; envelope: Envelope }
  | { ok: true; control: true; message: ControlMessage }
  | { ok: false; reason: string }

export interface FromWireOptions {
  /** Expected element count for a kind (e.g. the model's paramCount), or undefined if any. */
  expectedLength?: (kind: string) => number | undefined
}

/**
 * Receiver side: validates control meta, decodes and checks the payload (size, finiteness,
 * expected length) and stamps `from` from the link — never from the payload.
 */
export function fromWire(header: WireHeader, payload: Uint8Array, from: PeerId, opts: FromWireOptions = {}): FromWireResult {
  if (isControlKind(header.kind)) {
    const c = Object.values(CONTROL).find((x) => x.kind === header.kind)
    if (!c) return { ok: false, reason: `unknown control kind '${header.kind}'` }
    if (header.dtype !== 'none' || header.byteLength !== 0) return { ok: false, reason: `${header.kind} carries no payload` }
    const m = c.meta.safeParse(header.meta)
    if (!m.success) return { ok: false, reason: `${header.kind}: invalid meta` }
    return { ok: true, control: true, message: { kind: header.kind, meta: m.data } as ControlMessage }
  }
  let data: Float32Array | undefined
  if (header.dtype === 'none') {
    if (header.length !== 0 || header.byteLength !== 0) return { ok: false, reason: "dtype 'none' with a payload" }
  } else {
    const want = opts.expectedLength?.(header.kind)
    if (want !== undefined && header.length !== want) return { ok: false, reason: `${header.kind}: length ${header.length}, expected ${want}` }
    const codec = codecFor(header.dtype)
    if (codec.byteLength(header.length) !== payload.byteLength)
      return { ok: false, reason: `${header.dtype}: ${payload.byteLength} bytes for ${header.length} elements` }
    // The payload is the frame assembler's fresh buffer for this one message: adopt it.
    const r = codec.decode(payload, header.length, true)
    if (!r.ok) return { ok: false, reason: r.error }
    data = r.data
  }
  const envelope: Envelope = {
    kind: header.kind,
    round: header.round,
    ...(header.meta ? { meta: header.meta } : {}),
    ...(data ? { data } : {}),
    from,
    epoch: header.epoch,
    clock: header.clock,
  }
  return { ok: true, control: false, envelope }
}
