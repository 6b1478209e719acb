import { describe, expect, it } from 'vitest'
import type { Compression } from '../../shared/config'
import { rawFrame } from '../../shared/wire/framing'
import { CONTROL } from '../../shared/wire/peer-message'
import { WireEncoder, type Inbound } from './wire-encoder'

function encoder(compression: Compression = 'fp32', schemaHash = 'h') {
  let id = 0
  const ids = { takeMessageId: () => id++ }
  const wire = new WireEncoder({
    state: () => ({ epoch: 2, clock: 5, schemaHash }),
    compression: () => compression,
    maxMessageBytes: () => 1 << 20,
    expectedLength: (kind) => (kind === 't/fixed' ? 3 : undefined),
    errorFeedback: (kind) => kind === 't/inc',
  })
  return { wire, ids }
}

function readAll(wire: WireEncoder, link: object, frames: Uint8Array[]): Inbound[] {
  return frames.map((f) => wire.read(link, 'a', f))
}

describe('WireEncoder', () => {
  it('frames a message and reads it back as an envelope stamped with the link\'s peer', () => {
    const { wire, ids } = encoder()
    const link = {}
    wire.open(link)
    const x = new Float32Array(40_000).map((_, i) => i * 0.5)
    const frames = wire.message('b', { kind: 't/m', round: 7, meta: { k: 1 }, data: x }, ids)
    expect(frames.length).toBeGreaterThan(1)
    const out = readAll(wire, link, frames)
    expect(out.slice(0, -1).every((r) => r.type === 'partial')).toBe(true)
    const last = out.at(-1)!
    expect(last.type).toBe('envelope')
    if (last.type !== 'envelope') return
    expect(last.envelope).toMatchObject({ kind: 't/m', round: 7, meta: { k: 1 }, from: 'a', epoch: 2, clock: 5 })
    expect(Array.from(last.envelope.data!)).toEqual(Array.from(x))
  })

  it('reads control messages, counts raw frames apart, and rejects bad lengths and foreign schemas', () => {
    const { wire, ids } = encoder()
    const link = {}
    wire.open(link)
    const [bye] = wire.control({ kind: CONTROL.bye.kind, meta: { reason: 'x' } }, ids)
    expect(wire.read(link, 'a', bye)).toEqual({ type: 'control', message: { kind: 'mesh/bye', meta: { reason: 'x' } } })
    expect(wire.read(link, 'a', rawFrame(1000))).toEqual({ type: 'raw' })
    const [short] = wire.message('b', { kind: 't/fixed', round: 0, data: new Float32Array(2) }, ids)
    expect(wire.read(link, 'a', short).type).toBe('rejected')
    const other = encoder('fp32', 'other')
    const [foreign] = other.wire.message('b', { kind: 't/m', round: 0, data: new Float32Array(2) }, other.ids)
    expect(wire.read(link, 'a', foreign).type).toBe('rejected')
    expect(() => wire.message('b', { kind: 'mesh/hello', round: 0 }, ids)).toThrow(/reserved/)
  })

  it('keeps error feedback per (peer, kind) for increments only', () => {
    const { wire, ids } = encoder('int8')
    const link = {}
    wire.open(link)
    const x = new Float32Array(64).map((_, i) => Math.sin(i) * 0.37)
    const sum = new Float32Array(64)
    for (let r = 0; r < 20; r++) {
      const [f] = wire.message('b', { kind: 't/inc', round: r, data: x }, ids)
      const got = wire.read(link, 'a', f)
      if (got.type !== 'envelope') throw new Error(got.type)
      got.envelope.data!.forEach((v, i) => (sum[i] += v))
    }
    // With error feedback the accumulated error stays within one message's rounding.
    let worst = 0
    for (let i = 0; i < 64; i++) worst = Math.max(worst, Math.abs(sum[i] - 20 * x[i]))
    expect(worst).toBeLessThan(0.37 / 127 * 2)
    // Parameters (not increments) take the plain codec image, which wireImage reproduces.
    const [p] = wire.message('b', { kind: 't/params', round: 0, data: x }, ids)
    const got = wire.read(link, 'a', p)
    const image = new Float32Array(x)
    wire.wireImage('t/params', image)
    expect(got.type === 'envelope' && Array.from(got.envelope.data!)).toEqual(Array.from(image))
  })

  it('reads each link on its own: a new link starts with no half-assembled message', () => {
    const { wire, ids } = encoder()
    const [first, next] = [{}, {}]
    wire.open(first)
    const frames = wire.message('b', { kind: 't/m', round: 0, data: new Float32Array(40_000) }, ids)
    expect(wire.read(first, 'a', frames[0]).type).toBe('partial')
    wire.close(first)
    wire.open(next)
    expect(wire.read(next, 'a', frames[1])).toMatchObject({ type: 'rejected', reason: expect.stringContaining('out-of-order') })
  })
})
