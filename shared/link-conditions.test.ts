import { describe, expect, it } from 'vitest'
import { buildReport } from '../client/session/telemetry'
import { faultTags } from '../client/ui/format'
import { RoomRegistry } from '../signaling-server/rooms'
import { ALGORITHM_FACTORIES } from './algorithms/index'
import { parseRoomConfig } from './config'
import { reportSchema } from './protocol/signaling'
import { LINK_PROFILE_TABLE, Uplink, linkConditions, type LinkClock, type LinkProfileName } from './link-conditions'
import { startPeers, runSteps, testConfig } from './testing/harness'
import { LsqCompute, makeLsqProblem } from './testing/lsq-compute'
import { MemoryNetwork, memoryMeshHarness, type MemoryMesh } from './testing/memory-mesh'
import { describeMeshCompliance } from './testing/mesh-compliance'
import { deadline } from './transport'

/** A clock that only moves when told: timers fire in time order, microtasks run in between. */
class VirtualClock implements LinkClock {
  t = 0
  private nextId = 0
  private readonly timers = new Map<number, { at: number; fn: () => void }>()
  now(): number {
    return this.t
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn })
    return id
  }
  clearTimer(h: unknown): void {
    this.timers.delete(h as number)
  }
  /** Fires every timer due up to t + ms (and those they set), then stops at t + ms. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      await flush()
      let first: [number, { at: number; fn: () => void }] | null = null
      for (const e of this.timers) if (e[1].at <= end && (!first || e[1].at < first[1].at)) first = e
      if (!first) break
      this.timers.delete(first[0])
      this.t = Math.max(this.t, first[1].at)
      first[1].fn()
    }
    this.t = end
    await flush()
  }
  pending(): number {
    return this.timers.size
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve()
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

/** Small messages spaced well apart (no queueing): their one-way delays. */
async function probeDelays(name: LinkProfileName, seed: number, n = 400): Promise<number[]> {
  const clock = new VirtualClock()
  const up = new Uplink(LINK_PROFILE_TABLE[name], { seed, clock })
  const link = up.link('b')
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const sent = clock.now()
    await link.send(100, () => out.push(clock.now() - sent))
    await clock.advance(1000)
  }
  return out
}

/** Pushes `total` bytes as fast as backpressure allows over `links` links of one uplink: bytes/s. */
async function bulkRate(name: LinkProfileName, total: number, links = 1): Promise<{ rate: number; peak: number; order: boolean }> {
  const clock = new VirtualClock()
  const up = new Uplink(LINK_PROFILE_TABLE[name], { seed: 7, clock })
  const frame = 64 * 1024
  let delivered = 0
  let last = 0
  let order = true
  const ls = Array.from({ length: links }, (_, i) => up.link(`p${i}`))
  await Promise.all(ls.map(async (l) => {
    let expect = 0
    for (let i = 0; i < total / links / frame; i++) {
      const seq = i
      const p = l.send(frame, () => {
        if (seq !== expect++) order = false
        delivered += frame
        last = clock.now()
      })
      // Awaiting the send is the backpressure: advance the clock while it waits.
      for (let spins = 0; ; spins++) {
        const done = await Promise.race([p.then(() => true), flush().then(() => false)])
        if (done) break
        await clock.advance(1)
        if (spins > 1e6) throw new Error('stuck')
      }
    }
  }))
  while (delivered < total) await clock.advance(10)
  return { rate: (delivered / last) * 1000, peak: Math.max(...ls.map((l) => l.peakQueuedBytes)), order }
}

describe('link conditions: the emulated delay and rate hold within tolerance', () => {
  it('lan adds nothing: no shaper at all', () => {
    expect(linkConditions('lan', { seed: 1 })).toBeNull()
    expect(linkConditions('wan', { seed: 1 })).not.toBeNull()
  })

  for (const name of ['wan', 'slow'] as const) {
    it(`${name}: one-way delay has median within ±20 % of the profile and stays inside the jitter bound`, async () => {
      const p = LINK_PROFILE_TABLE[name]
      const d = await probeDelays(name, 3)
      expect(Math.abs(median(d) - p.oneWayMs)).toBeLessThanOrEqual(0.2 * p.oneWayMs)
      // Bound: jitter either side, plus one 100-byte frame's serialisation (under 1 ms).
      for (const x of d) {
        expect(x).toBeGreaterThanOrEqual(p.oneWayMs - p.jitterMs - 1e-9)
        expect(x).toBeLessThanOrEqual(p.oneWayMs + p.jitterMs + 1)
      }
      // The jitter is real: not every delay is the same.
      expect(new Set(d.map((x) => x.toFixed(3))).size).toBeGreaterThan(50)
    })

    it(`${name}: a bulk transfer runs at the uplink cap ±15 %, in order, with the queue bounded`, async () => {
      const cap = LINK_PROFILE_TABLE[name].uplinkBytesPerSec!
      const r = await bulkRate(name, 8 * 1024 * 1024)
      expect(Math.abs(r.rate - cap) / cap).toBeLessThanOrEqual(0.15)
      expect(r.order).toBe(true)
      expect(r.peak).toBeLessThanOrEqual(1024 * 1024)
    })
  }

  it('the cap is the peer\'s uplink: three links together get the cap, not three times it', async () => {
    const cap = LINK_PROFILE_TABLE.wan.uplinkBytesPerSec!
    const r = await bulkRate('wan', 6 * 1024 * 1024, 3)
    expect(Math.abs(r.rate - cap) / cap).toBeLessThanOrEqual(0.15)
    expect(r.order).toBe(true)
  })

  it('is seeded: the same seed gives the same delays, another seed other ones', async () => {
    const a = await probeDelays('lossy', 11, 200)
    const b = await probeDelays('lossy', 11, 200)
    const c = await probeDelays('lossy', 12, 200)
    expect(b).toEqual(a)
    expect(c).not.toEqual(a)
  })

  it('lossy: nothing is dropped; a lost frame comes one RTT per loss later and holds those behind it', async () => {
    const p = LINK_PROFILE_TABLE.lossy
    const d = await probeDelays('lossy', 5, 1000)
    expect(d).toHaveLength(1000)
    const late = d.filter((x) => x > p.oneWayMs + p.jitterMs + 1)
    // 2 % loss: about 20 of 1000 retransmitted (a loose bound, seeded).
    expect(late.length).toBeGreaterThan(5)
    expect(late.length).toBeLessThan(45)
    for (const x of late) expect(x).toBeGreaterThanOrEqual(p.oneWayMs - p.jitterMs + 2 * p.oneWayMs - 1e-9)
  })

  it('keeps FIFO order under jitter, and a full link makes the sender wait (never drops)', async () => {
    const clock = new VirtualClock()
    const up = new Uplink(LINK_PROFILE_TABLE.slow, { seed: 2, clock, maxQueuedBytes: 4096 })
    const link = up.link('b')
    const got: number[] = []
    let resolved = 0
    const sends = Array.from({ length: 10 }, (_, i) => link.send(1024, () => got.push(i)).then(() => resolved++))
    await flush()
    // 4 KiB fit; the other six wait for room.
    expect(resolved).toBe(4)
    expect(link.queuedBytes).toBeLessThanOrEqual(4096)
    while (got.length < 10) await clock.advance(5)
    await Promise.all(sends)
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(link.peakQueuedBytes).toBeLessThanOrEqual(4096)
    expect(clock.pending()).toBe(0)
  })

  it('closing the link drops what it holds, fails waiting senders and leaves no timer', async () => {
    const clock = new VirtualClock()
    const up = new Uplink(LINK_PROFILE_TABLE.wan, { seed: 2, clock, maxQueuedBytes: 2048 })
    const link = up.link('b')
    let delivered = 0
    await link.send(2048, () => delivered++)
    const waiting = link.send(1024, () => delivered++)
    link.close()
    await expect(waiting).rejects.toThrow(/link closed/)
    await clock.advance(1000)
    expect(delivered).toBe(0)
    expect(clock.pending()).toBe(0)
    expect(link.queuedBytes).toBe(0)
  })

  it('a waiting sender whose signal aborts gets the abort reason and frees its place', async () => {
    const clock = new VirtualClock()
    const up = new Uplink(LINK_PROFILE_TABLE.wan, { seed: 2, clock, maxQueuedBytes: 1024 })
    const link = up.link('b')
    await link.send(1024, () => {})
    const ctl = new AbortController()
    const a = link.send(1024, () => {}, ctl.signal)
    let bDone = false
    const b = link.send(512, () => {}).then(() => (bDone = true))
    ctl.abort(new Error('gave up'))
    await expect(a).rejects.toThrow('gave up')
    await clock.advance(100)
    await b
    expect(bDone).toBe(true)
  })
})

// The Mesh contract holds under emulated conditions too (real clock: the suite waits on events).
describeMeshCompliance('MemoryMesh with link: lossy', async (n) => memoryMeshHarness({ seed: 3, link: 'lossy' }, n))

describe('link conditions on the in-memory mesh', () => {
  it('wan: messages arrive after the emulated delay, intact and in order, on a virtual clock', async () => {
    const clock = new VirtualClock()
    const net = new MemoryNetwork({ seed: 4, link: 'wan', clock })
    const a = net.join('a')
    const b = net.join('b')
    const data = new Float32Array(1000).map((_, i) => i * 0.5)
    for (let r = 0; r < 5; r++) await a.send('b', { kind: 't', round: r, data })
    data.fill(-1)
    await clock.advance(17)
    // Nothing before the minimum one-way delay (18 ms).
    expect(b.stats().bytesReceived).toBe(0)
    await clock.advance(10)
    for (let r = 0; r < 5; r++) {
      const e = await b.receive({ kind: 't' }, deadline('t', 1000))
      expect(e.round).toBe(r)
      expect(e.data![999]).toBe(499.5)
    }
    expect(a.stats().bytesSent).toBe(5 * (32 + 4000))
  })

  it('lossy: DPSGD ends with the very same model as on lan (nothing dropped or torn, only later)', async () => {
    const cfg = testConfig({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0.5, stepDeadlineMs: 5000 })
    const prob = makeLsqProblem({ n: 3, d: 20, m: 12, seed: 3 })
    const run = async (link: LinkProfileName) => {
      const net = new MemoryNetwork({ seed: 1, link })
      const peers = await startPeers(ALGORITHM_FACTORIES.dpsgd, net, prob.shards.map((s) => new LsqCompute(s)), cfg, [])
      const t0 = performance.now()
      const reports = await Promise.all(peers.map((p) => runSteps(p, 12)))
      const ms = performance.now() - t0
      const out = await Promise.all(peers.map(async (p) => Array.from(await p.compute.readParams())))
      for (const p of peers) {
        p.stop.abort()
        p.inst.dispose()
      }
      return { out, reports, ms }
    }
    const lan = await run('lan')
    const lossy = await run('lossy')
    expect(lossy.out).toEqual(lan.out)
    expect(lossy.reports.flat().length).toBe(36)
    // The links were slowed: each lock-step round waits at least one 18 ms one-way delay.
    expect(lossy.ms).toBeGreaterThan(12 * 18)
  }, 30_000)
})

describe('link conditions as a room option, reported and shown', () => {
  it('the room option defaults to lan, takes the profile names and names a bad one', () => {
    const d = parseRoomConfig({})
    expect(d.ok && d.config.link).toBe('lan')
    const w = parseRoomConfig({ link: 'wan' })
    expect(w.ok && w.config.link).toBe('wan')
    const bad = parseRoomConfig({ link: 'satellite' })
    expect(bad.ok ? null : bad.field).toBe('link')
  })

  it('a peer reports its effective profile and the dashboard tags it (lan: no tag)', () => {
    const registry = new RoomRegistry()
    const cfg = parseRoomConfig({ link: 'slow' })
    if (!cfg.ok) throw new Error(cfg.error)
    const created = registry.create({ name: 'link-room', tokenHash: null, config: cfg.config })
    if (!created.ok) throw new Error(created.message)
    for (const id of ['a', 'b']) {
      expect(registry.join('link-room', { id, role: 'volunteer' }).ok).toBe(true)
      expect(registry.ready(id).ok).toBe(true)
    }
    const snap = { step: 1, globalStep: 1, loss: 0.5, accuracy: null, backend: 'cpu', backendReason: '', computeThread: null, samplesPerSec: 1, stepsPerSec: 1, samples: 1, bytesSent: 0, bytesReceived: 0, neighbors: [], lr: 0.1, h: null, consensus: null, stage: 'training', capability: [], config: cfg.config }
    const extra = { slowFactor: 1, latencyMs: 0, divergence: null }
    // a overrides the room's profile (npm run peer -- --link wan); b has none.
    const ra = reportSchema.parse(buildReport(snap as never, undefined, { ...extra, link: 'wan' }))
    const rb = reportSchema.parse(buildReport(snap as never, undefined, { ...extra, link: 'lan' }))
    expect(rb.link).toBeUndefined()
    registry.report('a', ra)
    registry.report('b', rb)
    const peers = registry.view(registry.get('link-room')!).peers
    expect(faultTags(peers.find((p) => p.id === 'a')!)).toEqual(['link: wan'])
    expect(faultTags(peers.find((p) => p.id === 'b')!)).toEqual([])
    expect(reportSchema.safeParse({ ...ra, link: 'satellite' }).success).toBe(false)
  })
})
