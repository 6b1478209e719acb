import { describe, expect, it } from 'vitest'
import {
  FRAME_FIXED_BYTES, FrameAssembler, HARD_CHANNEL_LIMIT_BYTES, MAX_FRAME_BYTES, encodeMessage, isRawFrame, rawFrame,
  type FrameResult, type WireHeader,
} from './framing'
import { fromWire, toWire } from './peer-message'

const SCHEMA = 'schema-a'

function header(byteLength: number, over: Partial<WireHeader> = {}): WireHeader {
  return { v: 1, kind: 'dpsgd/params', epoch: 2, round: 5, clock: 9, schemaHash: SCHEMA, dtype: 'none', length: 0, byteLength, ...over }
}

function assembler(maxMessageBytes = 64 * 1024 * 1024, schemaHash = SCHEMA): FrameAssembler {
  return new FrameAssembler({ maxMessageBytes, schemaHash: () => schemaHash })
}

function bytes(n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff
  return b
}

function feed(a: FrameAssembler, frames: Uint8Array[]): FrameResult[] {
  return frames.map((f) => a.push(f))
}

/** Bytes of payload the first frame of a message with this header holds. */
function firstCapacity(h: WireHeader): number {
  return MAX_FRAME_BYTES - FRAME_FIXED_BYTES - new TextEncoder().encode(JSON.stringify(h)).byteLength
}

describe('framing', () => {
  it('keeps frames well under the 256 KiB hard data-channel limit', () => {
    expect(MAX_FRAME_BYTES).toBe(64 * 1024)
    expect(MAX_FRAME_BYTES * 4).toBe(HARD_CHANNEL_LIMIT_BYTES)
  })

  it('round-trips an empty payload in one frame', () => {
    const frames = encodeMessage(1, header(0), new Uint8Array(0))
    expect(frames).toHaveLength(1)
    const r = assembler().push(frames[0])
    expect(r.type).toBe('message')
    if (r.type === 'message') {
      expect(r.payload.byteLength).toBe(0)
      expect(r.header.kind).toBe('dpsgd/params')
    }
  })

  it('fills exactly one frame, and spills one byte more into a second', () => {
    const h0 = header(0)
    const cap = firstCapacity(header(60_000)) // same JSON length for any 5-digit size
    const one = encodeMessage(1, header(cap), bytes(cap))
    expect(one).toHaveLength(1)
    expect(one[0].byteLength).toBe(MAX_FRAME_BYTES)
    const two = encodeMessage(2, header(cap + 1), bytes(cap + 1))
    expect(two).toHaveLength(2)
    expect(two[1].byteLength).toBe(FRAME_FIXED_BYTES + 1)
    const a = assembler()
    const r1 = a.push(one[0])
    expect(r1.type === 'message' && Buffer.from(r1.payload).equals(Buffer.from(bytes(cap)))).toBe(true)
    const rs = feed(a, two)
    expect(rs[0].type).toBe('partial')
    const r2 = rs[1]
    expect(r2.type === 'message' && Buffer.from(r2.payload).equals(Buffer.from(bytes(cap + 1)))).toBe(true)
    expect(h0.byteLength).toBe(0)
  })

  it('round-trips 25 MB with every frame ≤ 64 KiB', () => {
    const n = 25_000_000
    const p = bytes(n)
    const frames = encodeMessage(7, header(n), p)
    expect(frames.every((f) => f.byteLength <= MAX_FRAME_BYTES)).toBe(true)
    const a = assembler()
    const rs = feed(a, frames)
    expect(rs.slice(0, -1).every((r) => r.type === 'partial')).toBe(true)
    const last = rs[rs.length - 1]
    expect(last.type).toBe('message')
    if (last.type === 'message') expect(Buffer.from(last.payload).equals(Buffer.from(p))).toBe(true)
    expect(a.busy).toBe(false)
  })

  it('rejects a corrupted magic, a wrong version and a non-JSON header', () => {
    const f = encodeMessage(1, header(10), bytes(10))[0]
    const badMagic = f.slice()
    badMagic[0] ^= 0xff
    expect(assembler().push(badMagic)).toMatchObject({ type: 'error', reason: expect.stringMatching(/magic/) })
    const badVersion = f.slice()
    badVersion[4] = 99
    expect(assembler().push(badVersion)).toMatchObject({ type: 'error', reason: expect.stringMatching(/version/) })
    const badJson = f.slice()
    badJson[FRAME_FIXED_BYTES] = 0x7b + 1
    expect(assembler().push(badJson)).toMatchObject({ type: 'error' })
    expect(assembler().push(new Uint8Array(5))).toMatchObject({ type: 'error' })
  })

  it('rejects an invalid header (zod) and a header size that disagrees with the frames', () => {
    const f = encodeMessage(1, header(10, { epoch: -1 }), bytes(10))[0]
    expect(assembler().push(f)).toMatchObject({ type: 'error', reason: expect.stringMatching(/epoch/) })
    const g = encodeMessage(1, header(10), bytes(10))[0]
    // Rewrite the declared total (offset 20) so it disagrees with header.byteLength.
    new DataView(g.buffer).setUint32(20, 11, true)
    expect(assembler().push(g)).toMatchObject({ type: 'error' })
  })

  it('rejects out-of-order frames and skips the rest of that message', () => {
    const frames = encodeMessage(3, header(200_000), bytes(200_000))
    expect(frames.length).toBe(4)
    const a = assembler()
    expect(a.push(frames[0]).type).toBe('partial')
    expect(a.push(frames[2])).toMatchObject({ type: 'error', reason: expect.stringMatching(/out-of-order/) })
    expect(a.push(frames[3]).type).toBe('partial') // poisoned message: one error only
    // The next message is accepted.
    const next = encodeMessage(4, header(5), bytes(5))
    expect(a.push(next[0]).type).toBe('message')
  })

  it('rejects a message whose first frame is missing', () => {
    const frames = encodeMessage(3, header(100_000), bytes(100_000))
    expect(assembler().push(frames[1])).toMatchObject({ type: 'error', reason: expect.stringMatching(/without a first frame/) })
  })

  it('rejects missing frames: a new message before the previous one completed', () => {
    const frames = encodeMessage(3, header(200_000), bytes(200_000))
    const a = assembler()
    a.push(frames[0])
    a.push(frames[1])
    const next = encodeMessage(4, header(5), bytes(5))
    expect(a.push(next[0])).toMatchObject({ type: 'error', reason: expect.stringMatching(/missing frames/) })
    expect(a.busy).toBe(false)
    expect(a.push(encodeMessage(5, header(5), bytes(5))[0]).type).toBe('message')
  })

  it('rejects a truncated or padded frame (size mismatch)', () => {
    const frames = encodeMessage(3, header(100_000), bytes(100_000))
    const a = assembler()
    a.push(frames[0])
    expect(a.push(frames[1].subarray(0, frames[1].byteLength - 1))).toMatchObject({ type: 'error', reason: expect.stringMatching(/size mismatch/) })
  })

  it('rejects an oversized message on its first frame, before buffering anything', () => {
    const frames = encodeMessage(1, header(300_000), bytes(300_000))
    const a = assembler(200_000)
    expect(a.push(frames[0])).toMatchObject({ type: 'error', reason: expect.stringMatching(/maxMessageBytes/) })
    expect(a.busy).toBe(false)
    for (const f of frames.slice(1)) expect(a.push(f).type).toBe('partial')
  })

  it('rejects a wrong schema hash on the first frame', () => {
    const frames = encodeMessage(1, header(200_000, { schemaHash: 'schema-b' }), bytes(200_000))
    const a = assembler()
    expect(a.push(frames[0])).toMatchObject({ type: 'error', reason: expect.stringMatching(/schema/) })
    expect(a.busy).toBe(false)
  })

  it('never throws on random garbage', () => {
    const a = assembler()
    let seed = 1
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
    for (let i = 0; i < 500; i++) {
      const f = encodeMessage(i, header(1000), bytes(1000))[0]
      const g = f.slice()
      g[Math.floor(rnd() * g.length)] = Math.floor(rnd() * 256)
      expect(() => a.push(g)).not.toThrow()
    }
  })

  it('marks raw benchmark chunks so they are never reassembled', () => {
    const r = rawFrame(MAX_FRAME_BYTES)
    expect(r.byteLength).toBe(MAX_FRAME_BYTES)
    expect(isRawFrame(r)).toBe(true)
    expect(isRawFrame(encodeMessage(1, header(0), new Uint8Array(0))[0])).toBe(false)
    expect(assembler().push(r).type).toBe('error')
  })
})

describe('peer messages', () => {
  it('map a MeshMessage to header+payload and back, stamping from from the link', () => {
    const data = new Float32Array([1.5, -2, 3])
    const w = toWire({ kind: 'dpsgd/params', round: 4, meta: { w: 0.5 }, data }, { epoch: 3, clock: 17, schemaHash: SCHEMA, compression: 'fp32' })
    expect(w.header).toMatchObject({ v: 1, kind: 'dpsgd/params', epoch: 3, round: 4, clock: 17, dtype: 'fp32', length: 3, byteLength: 12 })
    const r = fromWire(w.header, w.payload, 'peer-x', { expectedLength: () => 3 })
    expect(r.ok && !r.control && r.envelope).toMatchObject({ from: 'peer-x', epoch: 3, clock: 17, round: 4, meta: { w: 0.5 } })
    if (r.ok && !r.control) expect(Array.from(r.envelope.data!)).toEqual([1.5, -2, 3])
    expect(fromWire(w.header, w.payload, 'peer-x', { expectedLength: () => 4 }).ok).toBe(false)
  })

  it('reserve mesh/ kinds for control messages and validate their meta', () => {
    expect(() => toWire({ kind: 'mesh/hello', round: 0 }, { epoch: 0, clock: 0, schemaHash: '', compression: 'fp32' })).toThrow()
    const hello = toWire({ kind: 'mesh/hello', round: 0, meta: { protocol: 1, schemaHash: 'h', epoch: 2 } },
      { epoch: 2, clock: 0, schemaHash: 'h', compression: 'fp32' }, true)
    const r = fromWire(hello.header, hello.payload, 'p')
    expect(r.ok && r.control && r.message.kind).toBe('mesh/hello')
    const bad = toWire({ kind: 'mesh/hello', round: 0, meta: { protocol: 2 } }, { epoch: 2, clock: 0, schemaHash: 'h', compression: 'fp32' }, true)
    expect(fromWire(bad.header, bad.payload, 'p').ok).toBe(false)
  })
})
