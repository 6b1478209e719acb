import { MAX_WIRE_VALUE } from '../wire/codec'
import { afterEach, describe, expect, it } from 'vitest'
import {
  acceptClock, deadline, isDeadline, type Envelope, type Membership, type Mesh,
} from '../transport'

export interface MeshHarness {
  meshes: Mesh[]
  /** Makes peer i leave (tab closed); resolves once the others may have seen it. */
  leave(i: number): Promise<void>
  close(): Promise<void>
  /** Optional: hand a raw envelope to peer i's receive side (tests stale-epoch drop precisely). */
  inject?(i: number, e: Envelope): void
}

const RECEIVE_MS = 3000

/** Waits (bounded) until `pred` holds for mesh m's membership. */
async function membershipWhere(m: Mesh, pred: (ms: Membership) => boolean, ms = RECEIVE_MS): Promise<Membership> {
  if (pred(m.membership())) return m.membership()
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error('membership deadline')) }, ms)
    const off = m.onMembership((x) => {
      if (pred(x)) { clearTimeout(t); off(); resolve(x) }
    })
  })
}

/**
 * The behaviour every Mesh implementation must have. Run it against MemoryMesh
 * (memory-mesh.test.ts) and the WebRTC mesh with the same `setup`.
 * Longer than 80 lines on purpose: it is a test suite, one short `it` per property, and reads
 * best as one list of what a mesh promises.
 */
export function describeMeshCompliance(name: string, setup: (n: number) => Promise<MeshHarness>): void {
  describe(`Mesh compliance: ${name}`, () => {
    let h: MeshHarness | null = null
    const open = async (n: number) => (h = await setup(n))
    afterEach(async () => {
      await h?.close()
      h = null
    })

    it('delivers a message and stamps the sender from the link', async () => {
      const { meshes: [a, b] } = await open(2)
      await a.send(b.self, { kind: 't/hello', round: 1, meta: { x: 1 } })
      const e = await b.receive({ kind: 't/hello' }, deadline('compliance/hello', RECEIVE_MS))
      expect(e.from).toBe(a.self)
      expect(e.round).toBe(1)
      expect(e.meta).toEqual({ x: 1 })
      expect(e.epoch).toBeGreaterThanOrEqual(0)
    })

    it('filters by kind, round and from', async () => {
      const { meshes: [a, b, c] } = await open(3)
      await a.send(c.self, { kind: 't/x', round: 1 })
      await b.send(c.self, { kind: 't/x', round: 2 })
      const e2 = await c.receive({ kind: 't/x', from: b.self }, deadline('compliance/filter', RECEIVE_MS))
      expect(e2.round).toBe(2)
      const e1 = await c.receive({ kind: 't/x', round: 1 }, deadline('compliance/filter', RECEIVE_MS))
      expect(e1.from).toBe(a.self)
    })

    it('delivers (from, kind, round) at most once', async () => {
      const { meshes: [a, b] } = await open(2)
      await a.send(b.self, { kind: 't/dup', round: 7, meta: { copy: 1 } })
      await a.send(b.self, { kind: 't/dup', round: 7, meta: { copy: 2 } })
      await a.send(b.self, { kind: 't/dup', round: 8 })
      const first = await b.receive({ kind: 't/dup' }, deadline('compliance/dup', RECEIVE_MS))
      expect(first.round).toBe(7)
      const next = await b.receive({ kind: 't/dup' }, deadline('compliance/dup', RECEIVE_MS))
      expect(next.round).toBe(8)
      await expect(b.receive({ kind: 't/dup' }, deadline('compliance/dup-none', 100))).rejects.toSatisfy(isDeadline)
    })

    it('rejects a receive with DeadlineError carrying the deadline name', async () => {
      const { meshes: [, b] } = await open(2)
      const err = await b.receive({ kind: 't/never' }, deadline('compliance/never', 50)).catch((e: unknown) => e)
      expect(isDeadline(err)).toBe(true)
      expect((err as { deadline: string }).deadline).toBe('compliance/never')
    })

    it('rejects a send to an unknown peer with PeerUnavailableError', async () => {
      const { meshes: [a] } = await open(2)
      const err = await a.send('no-such-peer', { kind: 't/x', round: 0 }, deadline('compliance/send', RECEIVE_MS))
        .then(() => null, (e: unknown) => e)
      expect((err as Error | null)?.name).toBe('PeerUnavailableError')
    })

    it('round-trips a large Float32Array exactly', async () => {
      const { meshes: [a, b] } = await open(2)
      const d = 300_001
      const x = new Float32Array(d)
      for (let i = 0; i < d; i++) x[i] = Math.fround(Math.sin(i) * 1e3 + i * 1e-7)
      x[0] = -0
      // The largest magnitude the wire carries (beyond it a value is refused like NaN: codec.ts).
      x[1] = -MAX_WIRE_VALUE
      x[2] = 1.401298464324817e-45
      await a.send(b.self, { kind: 't/big', round: 0, data: x })
      const e = await b.receive({ kind: 't/big' }, deadline('compliance/big', 20_000))
      expect(e.data).toBeInstanceOf(Float32Array)
      expect(e.data!.length).toBe(d)
      expect(Buffer.from(e.data!.buffer, e.data!.byteOffset, e.data!.byteLength)
        .equals(Buffer.from(x.buffer))).toBe(true)
    })

    it('announces a leave to the others with a higher epoch, and stamps new messages with it', async () => {
      const { meshes } = await open(3)
      const [a, b, c] = meshes
      const before = a.membership().epoch
      const seen = membershipWhere(a, (m) => !m.peers.includes(c.self))
      await h!.leave(2)
      const m = await seen
      expect(m.epoch).toBeGreaterThan(before)
      expect(m.peers).toContain(b.self)
      await membershipWhere(b, (x) => x.epoch >= m.epoch)
      await a.send(b.self, { kind: 't/after', round: 0 })
      const e = await b.receive({ kind: 't/after' }, deadline('compliance/after', RECEIVE_MS))
      expect(e.epoch).toBeGreaterThanOrEqual(m.epoch)
    })

    it('drops messages from an older epoch', async () => {
      const harness = await open(3)
      if (!harness.inject) return // only meshes exposing a raw receive side can test this exactly
      const [a, b] = harness.meshes
      await harness.leave(2)
      await membershipWhere(b, (m) => m.peers.length === 2)
      const ep = b.membership().epoch
      harness.inject(1, { from: a.self, kind: 't/stale', round: 0, epoch: ep - 1, clock: 0 })
      harness.inject(1, { from: a.self, kind: 't/fresh', round: 0, epoch: ep, clock: 0 })
      await b.receive({ kind: 't/fresh' }, deadline('compliance/fresh', RECEIVE_MS))
      await expect(b.receive({ kind: 't/stale' }, deadline('compliance/stale', 50))).rejects.toSatisfy(isDeadline)
    })

    it('stamps the sender\'s clock; the receiver merges it only once accepted, and only up to its ceiling', async () => {
      const { meshes: [a, b] } = await open(2)
      a.clock.advance(41)
      await a.send(b.self, { kind: 't/clock', round: 0 })
      const e = await b.receive({ kind: 't/clock' }, deadline('compliance/clock', RECEIVE_MS))
      expect(e.clock).toBe(41)
      // Arrival alone merges nothing: the algorithm's checks come first.
      expect(b.clock.value).toBeLessThan(41)
      expect(acceptClock(b, e)).toBe(true)
      expect(b.clock.value).toBe(41)
      expect(acceptClock(b, { ...e, clock: 1e300 })).toBe(false)
      expect(b.clock.value).toBe(41)
    })
  })
}
