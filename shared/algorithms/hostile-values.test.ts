import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { testConfig } from '../testing/harness'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { lrAt } from '../schedule'
import { CLOCK_SLACK_STEPS, deadline, ProgressClock, sleep, type Mesh, type MeshMessage, type PeerId } from '../transport'
import { MAX_WIRE_VALUE } from '../wire/codec'
import { chunkBound, MAX_CONTRIBUTION, NeighborExchange, ringAllReduceSum } from './common'
import { ALGORITHM_FACTORIES } from './index'
import { STATE_KIND } from './message-kinds'
import type { AlgorithmContext, AlgorithmInstance, Compute, StepReport } from './types'

/**
 * Issue #23, "no unbounded value from a peer reaches shared state": a hostile volunteer runs the
 * real algorithm over the in-memory mesh but lies in what it sends — a huge progress clock,
 * finite values near float32's maximum, bootstrap counters far ahead. Honest peers must keep
 * their clocks and learning rates, blame the liar (not an honest forwarder) and stay finite.
 */

/** `inner` as the algorithm sees it, with some members replaced (the rest bound to `inner`). */
function view(inner: Mesh, over: Partial<Record<keyof Mesh, unknown>>): Mesh {
  return new Proxy(inner, {
    get(t, p) {
      if (Object.prototype.hasOwnProperty.call(over, p)) return over[p as keyof Mesh]
      const v = Reflect.get(t, p, t) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v
    },
  })
}

/**
 * A clock liar: its mesh stamps `clock` on everything it sends, while its own algorithm keeps an
 * honest clock (so it keeps taking part correctly and only the stamp lies).
 */
function clockLiar(inner: MemoryMesh, clock: number): Mesh {
  inner.clock.advance(clock)
  return view(inner, { clock: new ProgressClock() })
}

/** A bootstrap liar: it answers state requests with `meta` merged into its honest answer. */
function stateLiar(inner: Mesh, meta: Record<string, unknown>): Mesh {
  return view(inner, {
    send: (to: PeerId, msg: MeshMessage, signal?: AbortSignal) =>
      inner.send(to, msg.kind === STATE_KIND.response && msg.meta?.ready ? { ...msg, meta: { ...msg.meta, ...meta } } : msg, signal),
  })
}

interface Peer { id: string; mesh: MemoryMesh; inst: AlgorithmInstance; stop: AbortController; reports: StepReport[] }

async function start(net: MemoryNetwork, id: string, compute: Compute, cfg: RoomConfig, wrap?: (m: MemoryMesh) => Mesh): Promise<Peer> {
  const mesh = net.mesh(id) ?? net.join(id)
  const stop = new AbortController()
  const inst = await ALGORITHM_FACTORIES[cfg.algorithm]({
    mesh: wrap ? wrap(mesh) : mesh, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now(),
  })
  return { id, mesh, inst, stop, reports: [] }
}

async function steps(p: Peer, k: number, onStep?: (r: StepReport) => void): Promise<void> {
  for (let i = 0; i < k && !p.stop.signal.aborted; i++) {
    const r = await p.inst.step()
    p.reports.push(r)
    onStep?.(r)
  }
}

function stopAll(peers: Peer[]): void {
  for (const p of peers) {
    p.stop.abort()
    p.inst.dispose()
  }
}

/** A cosine schedule over the default run length: a poisoned step counter shows as lr ≈ 0. */
const cosine = (over: Record<string, unknown>) => testConfig({ schedule: { kind: 'cosine', warmupSteps: 0 }, totalSteps: 3000, ...over })

function ctxOf(mesh: Mesh, cfg: RoomConfig, d: number): AlgorithmContext {
  return {
    mesh, compute: new LsqCompute({ m: 1, d, A: new Float64Array(d), b: new Float64Array(1) }), config: cfg,
    signal: new AbortController().signal, log: () => {}, now: () => performance.now(),
  }
}

describe('a clock of 1e300 (clock poisoning)', () => {
  it('is not merged on arrival, nor from a wrong-length message, nor beyond the bound from a valid one; its sender is counted', async () => {
    const net = new MemoryNetwork({ seed: 3 })
    const h = net.join('h')
    const x = net.join('x')
    const y = net.join('y')
    const cfg = cosine({ algorithm: 'dpsgd', stepDeadlineMs: 300 })
    const ex = new NeighborExchange(ctxOf(h, cfg, 4))
    x.clock.advance(1e300)
    y.clock.advance(7)
    const sets = { sendTo: [], receiveFrom: ['x'], directed: true }
    // A wrong-length message with a huge clock: rejected, and its clock never merged.
    await x.send('h', { kind: 't/x', round: 0, data: new Float32Array(3) })
    let res = await ex.exchange('t/x', 0, new Float32Array(4), sets)
    expect(res.missing).toEqual(['x'])
    expect(h.clock.value).toBe(0)
    expect(h.stats().rejected.x).toBe(1)
    // A valid payload is used, but its clock is beyond the bound: not merged, counted.
    await x.send('h', { kind: 't/x', round: 1, data: new Float32Array(4) })
    res = await ex.exchange('t/x', 1, new Float32Array(4), sets)
    expect(res.received.has('x')).toBe(true)
    expect(h.clock.value).toBe(0)
    expect(h.stats().rejected.x).toBe(2)
    // An honest clock within the bound is merged once its message is accepted.
    await y.send('h', { kind: 't/x', round: 2, data: new Float32Array(4) })
    expect(h.clock.value).toBe(0)
    await ex.exchange('t/x', 2, new Float32Array(4), { sendTo: [], receiveFrom: ['y'], directed: true })
    expect(h.clock.value).toBe(7)
    expect(h.stats().rejected.y).toBeUndefined()
  })

  it('a gossip swarm with a clock liar keeps its global step and cosine learning rate', async () => {
    const prob = makeLsqProblem({ n: 4, d: 6, m: 20, seed: 5, spread: 0.3 })
    const cfg = cosine({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, stepDeadlineMs: 1000 })
    const net = new MemoryNetwork({ seed: 6 })
    for (const id of ['p0', 'p1', 'p2', 'x']) net.join(id)
    const peers = await Promise.all(['p0', 'p1', 'p2', 'x'].map((id, i) =>
      start(net, id, new LsqCompute(prob.shards[i], { batchSize: 5 }), cfg, id === 'x' ? (m) => clockLiar(m, 1e300) : undefined)))
    const K = 12
    await Promise.all(peers.map((p) => steps(p, K)))
    for (const p of peers.slice(0, 3)) {
      for (const r of p.reports) {
        expect(r.globalStep).toBeLessThanOrEqual(K + CLOCK_SLACK_STEPS)
        expect(r.lr).toBeCloseTo(lrAt(cfg.schedule, cfg.lr, r.globalStep - 1, cfg.totalSteps), 12)
        expect(r.lr).toBeGreaterThan(0.9 * cfg.lr)
      }
      expect(p.mesh.clock.value).toBeLessThanOrEqual(K + CLOCK_SLACK_STEPS)
    }
    // The liar's ring neighbours counted it; nobody counted an honest peer.
    const blamed = new Set(peers.slice(0, 3).flatMap((p) => Object.keys(p.mesh.stats().rejected)))
    expect([...blamed]).toEqual(['x'])
    stopAll(peers)
  })
})

describe('finite but hostile values in the ring all-reduce (docs/security.md)', () => {
  it('3.4e38 from one member: its right neighbour rejects the sender, no honest forwarder is blamed, nothing non-finite is kept', async () => {
    const cfg = cosine({ algorithm: 'local-sgd', stepDeadlineMs: 400 })
    const net = new MemoryNetwork({ seed: 8 })
    const ids = ['p0', 'p1', 'x', 'p3']
    for (const id of ids) net.join(id)
    const roster = net.membership().peers
    const d = 16
    const results = await Promise.all(ids.map(async (id, i) => {
      const vec = id === 'x' ? new Float32Array(d).fill(3.4e38) : Float32Array.from({ length: d }, (_, k) => i + k / 10)
      try {
        await ringAllReduceSum(ctxOf(net.mesh(id)!, cfg, d), 'test/e1', 5, vec, roster, deadline('test', 400))
        return vec
      } catch {
        return null
      }
    }))
    // x's right neighbour refused its first chunk and named x.
    expect(net.mesh('p3')!.stats().rejected).toEqual({ x: 1 })
    for (const id of ['p0', 'p1', 'p3']) {
      const rejected = net.mesh(id)!.stats().rejected
      for (const honest of ['p0', 'p1', 'p3']) expect(rejected[honest]).toBeUndefined()
    }
    // An honest member that still completed holds no value beyond the bound.
    for (const [i, v] of results.entries()) {
      if (ids[i] !== 'x' && v) for (const e of v) expect(Math.abs(e)).toBeLessThanOrEqual(MAX_WIRE_VALUE)
    }
  })

  it('partial sums may grow by one contribution per hop: values up to the bound pass, whoever adds, and the full sum stays finite', async () => {
    const cfg = cosine({ algorithm: 'local-sgd', stepDeadlineMs: 2000 })
    const net = new MemoryNetwork({ seed: 9 })
    const ids = ['x0', 'p1', 'x2', 'p3']
    for (const id of ids) net.join(id)
    const roster = net.membership().peers
    const d = 8
    // Two members at the per-member bound: every partial sum stays within its hop's bound.
    const results = await Promise.all(ids.map(async (id) => {
      const vec = new Float32Array(d).fill(id.startsWith('x') ? MAX_CONTRIBUTION : 1)
      await ringAllReduceSum(ctxOf(net.mesh(id)!, cfg, d), 'test/e1', 1, vec, roster, deadline('test', 2000))
      return vec
    }))
    for (const v of results) for (const e of v) expect(e).toBeCloseTo(2 * MAX_CONTRIBUTION, -20)
    for (const id of ids) expect(net.mesh(id)!.stats().rejected).toEqual({})
    expect(chunkBound(256)).toBe(MAX_WIRE_VALUE)
    expect(chunkBound(1000)).toBe(MAX_WIRE_VALUE)
  })
})

describe('a joiner\'s bootstrap counters are the median of several answers, bounded (docs/security.md)', () => {
  const lies: [string, Record<string, unknown>][] = [
    // (A step must be a safe integer, which 1e300 is not: the global step was never checked.)
    ['beyond every bound (global step 1e300)', { step: 7, globalStep: 1e300, extra: { round: 1e9, h: 4, localCnt: 0 } }],
    ['within the bounds but far ahead of the group', { step: 900, globalStep: 900, extra: { round: 800, h: 4, localCnt: 0 } }],
  ]
  for (const [label, lie] of lies) {
    it(`local-sgd, one peer's answer ${label}: the joiner starts at the group's round and learning rate`, async () => {
      const h = 4
      const prob = makeLsqProblem({ n: 5, d: 6, m: 20, seed: 11, spread: 0.3 })
      const cfg = cosine({ algorithm: 'local-sgd', lr: 0.05, momentum: 0.5, sync: { kind: 'constant', h }, stepDeadlineMs: 1000 })
      const net = new MemoryNetwork({ seed: 12 })
      const ids = ['p0', 'p1', 'p2', 'x']
      for (const id of ids) net.join(id)
      const paced = (i: number) => {
        const c = new LsqCompute(prob.shards[i], { batchSize: 5 })
        const step = c.localStep.bind(c)
        c.localStep = async (o) => (await sleep(2), step(o))
        return c
      }
      const peers = await Promise.all(ids.map((id, i) => start(net, id, paced(i), cfg, id === 'x' ? (m) => stateLiar(m, lie) : undefined)))
      let joining: Promise<Peer> | null = null
      const T = 24
      const runs = peers.map((p, i) => steps(p, T, i === 0 ? (r) => {
        if (r.globalStep === 6) joining = start(net, 'j', paced(4), cfg)
      } : undefined))
      while (!joining) await sleep(5)
      const joiner = await (joining as Promise<Peer>)
      // To the group's last boundary, with the group.
      const toT = async () => {
        while ((joiner.reports.at(-1)?.globalStep ?? 0) < T && !joiner.stop.signal.aborted) await steps(joiner, 1)
      }
      await Promise.all([...runs, toT()])
      const first = joiner.reports[0]
      // It started at a boundary of the group (t ≤ T), not at the liar's position.
      expect(first.globalStep).toBeLessThanOrEqual(T + h)
      expect(first.lr).toBeCloseTo(lrAt(cfg.schedule, cfg.lr, first.globalStep - 1, cfg.totalSteps), 12)
      expect(first.lr).toBeGreaterThan(0.99 * cfg.lr)
      expect(joiner.mesh.clock.value).toBeLessThanOrEqual(T + h)
      stopAll([...peers, joiner])
    })
  }

  it('ssgd, a ring neighbour claiming global step 1e300: the joiner takes the other\'s exact state and counts the liar', async () => {
    const prob = makeLsqProblem({ n: 5, d: 6, m: 20, seed: 13, spread: 0.3 })
    const cfg = cosine({ algorithm: 'ssgd', lr: 0.05, momentum: 0.5, stepDeadlineMs: 1000 })
    const net = new MemoryNetwork({ seed: 14 })
    // Roster order x p1 p2 p3, then the joiner: its ring neighbours are x (asked first) and p3.
    const ids = ['x', 'p1', 'p2', 'p3']
    for (const id of ids) net.join(id)
    const lie = { step: 2 ** 40, globalStep: 1e300 }
    const peers = await Promise.all(ids.map((id, i) =>
      start(net, id, new LsqCompute(prob.shards[i], { batchSize: 5 }), cfg, id === 'x' ? (m) => stateLiar(m, lie) : undefined)))
    await Promise.all(peers.map((p) => steps(p, 5)))
    const joining = start(net, 'j', new LsqCompute(prob.shards[4], { batchSize: 5 }), cfg).then(async (j) => (await steps(j, 4), j))
    const [joiner] = await Promise.all([joining, ...peers.map((p) => steps(p, 4))])
    expect(joiner.reports.length).toBe(4)
    for (const r of joiner.reports) {
      expect(r.globalStep).toBeLessThanOrEqual(12)
      expect(r.lr).toBeGreaterThan(0.99 * cfg.lr)
    }
    expect(joiner.mesh.stats().rejected.x).toBeGreaterThanOrEqual(1)
    expect(joiner.mesh.stats().rejected.p3).toBeUndefined()
    stopAll([...peers, joiner])
  })
})
