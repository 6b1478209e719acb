import { describe, expect, it } from 'vitest'
import type { AlgorithmName, RoomConfig } from '../config'
import { mixingMatrix } from '../topology'
import { FAULTS, silentPeer } from '../testing/faults'
import { configWith } from '../testing/harness'
import { atcFixedPointMean, LsqCompute, makeLsqProblem, type LsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { ALGORITHM_FACTORIES } from './index'
import type { AlgorithmContext, AlgorithmInstance } from './types'
import { maxAbsDiff } from '../math/vector'
import { fp16Codec } from '../wire/codec'

const config = configWith({ stepDeadlineMs: 200 })

function ctxFor(mesh: MemoryMesh, compute: LsqCompute, cfg: RoomConfig, signal: AbortSignal): AlgorithmContext {
  return { mesh, compute, config: cfg, signal, log: process.env.ALG_LOG ? (ev, d) => console.log(mesh.self, ev, JSON.stringify(d)) : () => {}, now: () => performance.now() }
}

interface Peer { mesh: MemoryMesh; compute: LsqCompute; inst: AlgorithmInstance; stop: AbortController }

async function startPeers(net: MemoryNetwork, prob: LsqProblem, cfg: RoomConfig, idx: number[], batch?: number): Promise<Peer[]> {
  const meshes = idx.map((i) => net.join(`p${i}`))
  return Promise.all(meshes.map(async (mesh, k) => {
    const compute = new LsqCompute(prob.shards[idx[k]], { batchSize: batch })
    const stop = new AbortController()
    const inst = await ALGORITHM_FACTORIES[cfg.algorithm](ctxFor(mesh, compute, cfg, stop.signal))
    return { mesh, compute, inst, stop }
  }))
}

/**
 * The memory mesh delivers with microtasks, so thousands of steps would never return to the
 * event loop: yield now and then, or vitest's worker cannot answer its runner (its RPC gives up
 * after 60 s, which a loaded machine reaches).
 */
const run = (peers: Peer[], steps: number) => Promise.all(peers.map(async (p) => {
  for (let k = 0; k < steps; k++) {
    await p.inst.step()
    if (k % 50 === 49) await new Promise((r) => setImmediate(r))
  }
}))

function meanParams(xs: Float32Array[]): Float64Array {
  const out = new Float64Array(xs[0].length)
  for (const x of xs) for (let i = 0; i < x.length; i++) out[i] += x[i] / xs.length
  return out
}
const err = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0)

describe('SSGD', () => {
  it('N peers ≡ single-process SGD with batch N·b on the same samples (100 fp32 steps)', async () => {
    const n = 4
    const prob = makeLsqProblem({ n, d: 12, m: 24, seed: 1 })
    const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3 })
    const net = new MemoryNetwork({ seed: 2, faults: FAULTS.reorder })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
    await run(peers, 100)
    // Reference: one process, batch = the union of the peers' minibatches.
    const refs = prob.shards.map((s) => new LsqCompute(s, { batchSize: 4 }))
    const x = new Float32Array(12)
    const m = new Float32Array(12)
    for (let k = 0; k < 100; k++) {
      const gs = []
      for (const r of refs) { await r.writeParams(x); gs.push((await r.gradient()).grad) }
      for (let i = 0; i < 12; i++) {
        const g = gs.reduce((a, v) => a + v[i] * 4, 0) / (4 * n)
        m[i] = 0.9 * m[i] + g + 1e-3 * x[i]
        x[i] -= 0.05 * m[i]
      }
    }
    const finals = await Promise.all(peers.map((p) => p.inst.evalParams()))
    for (const f of finals) {
      expect(maxAbsDiff(f, finals[0])).toBe(0)
      expect(maxAbsDiff(f, x)).toBeLessThan(1e-5)
    }
  })
})

describe('SSGD linear scaling + warmup (Goyal et al.)', () => {
  it('lr = base·B/B_ref with B the all-reduced samples, ramped from the base lr; the trajectory is SGD with that lr', async () => {
    const n = 4
    const b = 4
    const prob = makeLsqProblem({ n, d: 8, m: 24, seed: 21 })
    // B = n·b = 16, B_ref = 4 → k = 4: lr ramps 0.01 → 0.04 over 10 steps, then stays (constant).
    const cfg = config({ algorithm: 'ssgd', lr: 0.01, momentum: 0.5, schedule: { kind: 'constant', warmupSteps: 10 }, lrScaling: { kind: 'linear', referenceBatch: 4 } })
    const lrOf = (t: number) => (t < 10 ? 0.01 + (0.04 - 0.01) * t / 10 : 0.04)
    const net = new MemoryNetwork({ seed: 22, faults: FAULTS.lan })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], b)
    const reports = await Promise.all(peers.map(async (p) => {
      const rs = []
      for (let k = 0; k < 30; k++) rs.push(await p.inst.step())
      return rs
    }))
    for (const rs of reports) rs.forEach((r, t) => expect(r.lr).toBeCloseTo(lrOf(t), 12))
    // Reference: one process, the union batch, heavy ball with the hand-written lr.
    const refs = prob.shards.map((s) => new LsqCompute(s, { batchSize: b }))
    const x = new Float32Array(8)
    const m = new Float32Array(8)
    for (let t = 0; t < 30; t++) {
      const gs = []
      for (const r of refs) { await r.writeParams(x); gs.push((await r.gradient()).grad) }
      for (let i = 0; i < 8; i++) {
        m[i] = 0.5 * m[i] + gs.reduce((a, g) => a + g[i], 0) / n
        x[i] -= lrOf(t) * m[i]
      }
    }
    for (const p of peers) expect(maxAbsDiff(await p.inst.evalParams(), x)).toBeLessThan(1e-5)

    // A peer leaves: B = 12 → k = 3, lr 0.03 from the next step on (docs/algorithms.md "SSGD under churn"), still identical replicas.
    net.leave(peers[3].mesh.self)
    peers[3].stop.abort()
    peers[3].inst.dispose()
    const stay = peers.slice(0, 3)
    const after = await Promise.all(stay.map((p) => p.inst.step()))
    for (const r of after) expect(r.lr).toBeCloseTo(0.03, 12)
    const xs = await Promise.all(stay.map((p) => p.inst.evalParams()))
    for (const v of xs) expect(maxAbsDiff(v, xs[0])).toBe(0)
    for (const p of stay) p.stop.abort(), p.inst.dispose()
  })
})

describe('SSGD resync: replicas that drifted apart become identical again', () => {
  const n = 4
  const prob = makeLsqProblem({ n, d: 6, m: 24, seed: 31 })
  const steps = (peers: Peer[], k: number) => Promise.all(peers.map(async (p) => {
    const rs = []
    for (let i = 0; i < k; i++) rs.push(await p.inst.step())
    return rs
  }))
  const spreadOf = async (peers: Peer[]) => {
    const xs = await Promise.all(peers.map((p) => p.inst.evalParams()))
    return Math.max(...xs.map((x) => maxAbsDiff(x, xs[0])))
  }
  const stopAll = (peers: Peer[]) => peers.forEach((p) => { p.stop.abort(); p.inst.dispose() })

  it('after all-reduces failed (a hung peer): every peer fell back to its own gradient; the next good step resyncs them', async () => {
    const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 50, resyncEvery: 0 })
    const net = new MemoryNetwork({ seed: 32 })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
    await steps(peers, 2)
    net.faults = silentPeer(FAULTS.none, 'p2')
    const hung = await steps(peers, 3)
    for (const rs of hung) expect(rs.every((r) => !r.communicated)).toBe(true)
    // Local gradients on different shards: the replicas are apart now…
    expect(await spreadOf(peers)).toBeGreaterThan(1e-3)
    net.faults = FAULTS.none
    const back = await steps(peers, 1)
    for (const rs of back) expect(rs[0].communicated).toBe(true)
    // …and identical (bit for bit) after one step that reaches the group.
    expect(await spreadOf(peers)).toBe(0)
    await steps(peers, 3)
    expect(await spreadOf(peers)).toBe(0)
    stopAll(peers)
  })

  it('with dropped messages: some steps fall back, and the replicas end identical', async () => {
    const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 50, resyncEvery: 0 })
    const net = new MemoryNetwork({ seed: 33, faults: { ...FAULTS.lan, dropRate: 0.15 } })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
    const lossy = await steps(peers, 8)
    expect(lossy.flat().some((r) => !r.communicated)).toBe(true)
    net.faults = FAULTS.lan
    await steps(peers, 2)
    expect(await spreadOf(peers)).toBe(0)
    stopAll(peers)
  })

  it('a ring split into halves one step apart lines up again (the halves do not chase each other)', async () => {
    const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 50, resyncEvery: 0 })
    const net = new MemoryNetwork({ seed: 37, faults: FAULTS.lan })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
    // p0 and p1 (ring neighbours) step alone: their all-reduce cannot complete, they fall back,
    // and the ring is now two halves at steps 1, 1, 0, 0, which is what a burst of drops leaves.
    const alone = await steps(peers.slice(0, 2), 1)
    expect(alone.flat().every((r) => !r.communicated && r.step === 1)).toBe(true)
    // Those behind adopt a later state; those ahead must wait for them instead of stepping on.
    const rs = await steps(peers, 3)
    for (const r of rs) expect(r.at(-1)).toMatchObject({ communicated: true, contributors: 4 })
    expect(new Set(rs.map((r) => r.at(-1)!.step)).size).toBe(1)
    expect(await spreadOf(peers)).toBe(0)
    stopAll(peers)
  })

  it('a peer ahead of a ring neighbour holds its step across calls instead of stepping on alone', async () => {
    const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 50, resyncEvery: 0 })
    const net = new MemoryNetwork({ seed: 38, faults: FAULTS.lan })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
    await steps(peers.slice(0, 2), 1) // the split: 1, 1, 0, 0 (as above)
    // p0 and p1 call step() again while p2 and p3 are still busy elsewhere (a long gradient, a
    // loaded machine): every deadline of the call passes with the neighbours behind. Stepping on
    // would make the split two steps wide; the step is held instead.
    const ahead = await steps(peers.slice(0, 2), 1)
    for (const [r] of ahead) expect(r).toMatchObject({ communicated: false, step: 1, samples: 0 })
    const rs = await steps(peers, 1)
    for (const [r] of rs) expect(r).toMatchObject({ communicated: true, contributors: 4, step: 2 })
    expect(await spreadOf(peers)).toBe(0)
    stopAll(peers)
  })

  for (const every of [10, 0]) {
    it(every ? 'every K steps: drift no peer can see (a lossy codec) is averaged away at step K' : 'control: without the periodic resync that drift stays', async () => {
      const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 1000, resyncEvery: every })
      const net = new MemoryNetwork({ seed: 34 })
      const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
      // Like an fp16/int8 wire: p1 decodes the all-gathered gradient chunks slightly differently
      // from their owners' copies (and forwards what it decoded), so the sums disagree a little.
      let noisy = true
      const mesh = peers[1].mesh
      const receive = mesh.receive.bind(mesh)
      mesh.receive = async (f, sig) => {
        const e = await receive(f, sig)
        return noisy && /^ssgd\/e\d+\/ag/.test(e.kind) && e.data ? { ...e, data: e.data.map((v) => v + 1e-3) } : e
      }
      const early = await steps(peers, 10) // steps 0…9
      for (const rs of early) expect(rs.every((r) => r.communicated)).toBe(true)
      expect(await spreadOf(peers)).toBeGreaterThan(1e-4)
      noisy = false
      await steps(peers, 2) // steps 10, 11
      if (every) expect(await spreadOf(peers)).toBe(0)
      else expect(await spreadOf(peers)).toBeGreaterThan(1e-4)
      stopAll(peers)
    })
  }
})

describe('SSGD over a lossy wire codec (fp16): the all-gather owner keeps what the others decode', () => {
  const prob = makeLsqProblem({ n: 4, d: 6, m: 24, seed: 35 })
  const round16 = (v: Float32Array) => {
    const r = fp16Codec.decode(fp16Codec.encode(v), v.length)
    if (!r.ok) throw new Error(r.error)
    return r.data
  }
  for (const withImage of [true, false]) {
    it(withImage ? 'replicas stay bit-identical with no resync at all' : 'control: an owner that keeps its exact chunk drifts from the others', async () => {
      const cfg = config({ algorithm: 'ssgd', lr: 0.05, momentum: 0.9, stepDeadlineMs: 1000, resyncEvery: 0 })
      const net = new MemoryNetwork({ seed: 36 })
      const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3], 4)
      for (const p of peers) {
        // Every SSGD payload crosses an fp16 wire; the mesh exposes the same rounding as wireImage.
        const receive = p.mesh.receive.bind(p.mesh)
        p.mesh.receive = async (f, sig) => {
          const e = await receive(f, sig)
          return /^ssgd\//.test(e.kind) && e.data ? { ...e, data: round16(e.data) } : e
        }
        if (withImage) p.mesh.wireImage = (_kind, data) => data.set(round16(data))
      }
      for (let k = 0; k < 12; k++) {
        const rs = await Promise.all(peers.map((p) => p.inst.step()))
        for (const r of rs) expect(r.communicated).toBe(true)
      }
      const xs = await Promise.all(peers.map((p) => p.inst.evalParams()))
      const spread = Math.max(...xs.map((x) => maxAbsDiff(x, xs[0])))
      if (withImage) expect(spread).toBe(0)
      else expect(spread).toBeGreaterThan(0)
      peers.forEach((p) => { p.stop.abort(); p.inst.dispose() })
    })
  }
})

describe('DecentLaM / DmSGD inconsistency bias', () => {
  const n = 8
  const d = 5
  const prob = makeLsqProblem({ n, d, m: 40, seed: 3 })
  /** Exact DSGD-ATC fixed point X = W(X − γ∇F(X)), solved as one linear system; returns ‖x̄ − x*‖². */
  function dsgdLimit(gamma: number): number {
    const W = mixingMatrix('ring', Array.from({ length: n }, (_, i) => `p${i}`))
    return err(atcFixedPointMean(prob.shards, W, gamma), prob.xstar)
  }
  async function limit(algorithm: AlgorithmName, lr: number, momentum: number): Promise<number> {
    const net = new MemoryNetwork({ seed: 1 })
    const peers = await startPeers(net, prob, config({ algorithm, topology: 'ring', lr, momentum }), [0, 1, 2, 3, 4, 5, 6, 7])
    await run(peers, 1500)
    return err(meanParams(await Promise.all(peers.map((p) => p.inst.evalParams()))), prob.xstar)
  }

  it('DecentLaM limit equals DSGD(γ) for every β; DmSGD(γ, β) equals DSGD(γ/(1−β))', async () => {
    const gamma = 0.1
    const base = dsgdLimit(gamma)
    expect(base).toBeGreaterThan(1e-4) // heterogeneity really biases the limit
    for (const beta of [0, 0.5, 0.8]) expect(await limit('decentlam', gamma, beta)).toBeCloseTo(base, 4)
    const dm = await limit('dmsgd', gamma, 0.5)
    expect(Math.abs(dm - dsgdLimit(gamma / 0.5)) / dm).toBeLessThan(1e-3)
    expect(dm).toBeGreaterThan(1.5 * base)
    // 4 × 1500 steps of 8 peers: ~20 s alone, far more on a loaded 2-core machine.
  }, 240_000)
})

describe('DPSGD with a silent neighbour', () => {
  it('does not stall: each step ends by the deadline and folds the missing weight', async () => {
    const prob = makeLsqProblem({ n: 4, d: 6, m: 20, seed: 5 })
    const net = new MemoryNetwork({ seed: 1 })
    const peers = await startPeers(net, prob, config({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, stepDeadlineMs: 50, suspectAfterMisses: 3 }), [0, 1, 2, 3])
    net.faults = silentPeer(FAULTS.none, 'p2')
    const reports = await Promise.all(peers.map(async (p) => {
      const rs = []
      for (let k = 0; k < 5; k++) rs.push(await p.inst.step())
      return rs
    }))
    expect(reports[1].every((r) => r.folded === 1 && r.contributors === 1)).toBe(true)
    expect(reports[0].every((r) => r.folded === 0)).toBe(true) // p0's neighbours are p1 and p3
    expect(peers[1].mesh.suspects.map((s) => s.peer)).toContain('p2')
    for (const r of reports.flat()) expect(Number.isFinite(r.loss)).toBe(true)
  })
})

describe('churn: a leaver never deadlocks the others; a joiner is bootstrapped and ends near them', () => {
  const cases: [AlgorithmName, Record<string, unknown>][] = [
    ['ssgd', {}],
    ['dpsgd', { topology: 'ring' }],
    ['dmsgd', { topology: 'ring' }],
    ['decentlam', { topology: 'ring' }],
    ['local-sgd', { sync: { kind: 'constant', h: 3 } }],
    ['local-adamw', { sync: { kind: 'constant', h: 3 }, lr: 0.01 }],
  ]
  for (const [algorithm, over] of cases) {
    it(algorithm, async () => {
      const prob = makeLsqProblem({ n: 6, d: 6, m: 20, seed: 9, spread: 0.3 })
      // The deadline is wall-clock: 100 ms let a loaded CI machine fold neighbours out of ordinary
      // steps (decentlam's joiner ended 0.018 from the centre against a 0.012 bound, once in ten
      // full runs), and so did 200 ms once with a type-check running beside the unit suite
      // (0.060 against 0.030). Longer costs time only where a wait really expires: the incumbents'
      // step that the joiner (still bootstrapping, by this test's construction) misses; 500 ms
      // adds ~7 s to these six cases.
      const cfg = config({ algorithm, lr: 0.05, momentum: 0.5, stepDeadlineMs: 500, ...over })
      const net = new MemoryNetwork({ seed: 4, faults: FAULTS.lan })
      const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3, 4], 5)
      // p4 leaves mid-run (its loop just stops, like a closed tab) while others keep stepping.
      await Promise.all(peers.map(async (p, i) => {
        for (let k = 0; k < (i === 4 ? 7 : 20); k++) await p.inst.step()
        if (i === 4) { p.stop.abort(); p.inst.dispose(); net.leave(p.mesh.self) }
      }))
      const stay = peers.slice(0, 4)
      // A joiner arrives; everybody continues.
      const [joiner] = await Promise.all([
        startPeers(net, prob, cfg, [5], 5).then((j) => j[0]),
        run(stay, 1),
      ])
      const all = [...stay, joiner]
      await run(all, 30)
      const xs = await Promise.all(all.map((p) => p.inst.evalParams()))
      const centre = meanParams(xs.slice(0, 4))
      const spread = Math.max(...xs.slice(0, 4).map((x) => err(centre, Float64Array.from(x))))
      const distJoiner = err(centre, Float64Array.from(xs[4]))
      expect(distJoiner).toBeLessThan(Math.max(10 * spread, 1e-2))
      for (const p of all) { p.stop.abort(); p.inst.dispose() }
    })
  }
})

describe('poisoned neighbours (DPSGD over the memory mesh)', () => {
  for (const mode of ['nan', 'shape'] as const) {
    it(`rejects ${mode === 'nan' ? 'NaN' : 'wrong-length'} parameters, counts them as rejected, reports the sender and keeps every good model finite`, async () => {
      const prob = makeLsqProblem({ n: 4, d: 10, m: 16, seed: 5 })
      const cfg = config({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0 })
      const net = new MemoryNetwork({ seed: 3 })
      const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3])
      const bad = peers[0]
      const realSend = bad.mesh.send.bind(bad.mesh)
      // Only what the bad peer sends is poisoned; its own model stays sane and it keeps stepping.
      bad.mesh.send = (to, msg, signal) => {
        if (!msg.data) return realSend(to, msg, signal)
        const data = mode === 'shape' ? msg.data.slice(0, msg.data.length - 3) : msg.data.map((v, i) => (i % 2 ? NaN : v))
        return realSend(to, { ...msg, data }, signal)
      }
      await run(peers, 9)
      const neighbours = peers.filter((p) => p !== bad && (p.mesh.self === 'p1' || p.mesh.self === 'p3'))
      for (const p of neighbours) {
        expect(p.mesh.stats().rejected[bad.mesh.self]).toBe(9)
        // Every third rejection is a report (plus one for the run of folded steps it causes).
        const reports = p.mesh.suspects.filter((s) => s.peer === bad.mesh.self).map((s) => s.reason)
        expect(reports.filter((r) => r.startsWith('rejected '))).toHaveLength(3)
        expect(reports[0]).toMatch(mode === 'shape' ? /length 7, expected 10/ : /NaN/)
      }
      for (const p of peers.slice(1)) expect((await p.compute.readParams()).every(Number.isFinite)).toBe(true)
      // The far peer (p2) never hears from the bad peer and rejects nothing.
      expect(peers[2].mesh.stats().rejected[bad.mesh.self] ?? 0).toBe(0)
    })
  }
})

describe('round re-alignment (DPSGD over the memory mesh)', () => {
  it('a peer that fell behind catches up with its neighbours within a couple of steps instead of folding them out', async () => {
    const prob = makeLsqProblem({ n: 3, d: 6, m: 12, seed: 9 })
    const cfg = config({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0, stepDeadlineMs: 100 })
    const net = new MemoryNetwork({ seed: 4 })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2])
    const early = peers.slice(1)
    // p1 and p2 run 8 steps while p0 sits idle (they fold p0 out after each deadline).
    await Promise.all(early.map(async (p) => { for (let k = 0; k < 8; k++) await p.inst.step() }))
    // Now everyone steps together: p0 starts 8 rounds behind.
    const reports = await Promise.all(peers.map(async (p) => {
      const out = []
      for (let k = 0; k < 6; k++) out.push(await p.inst.step())
      return out
    }))
    const lateReports = reports[0]
    // After at most two steps the late peer is on its neighbours' round and hears both of them.
    expect(lateReports.slice(2).every((r) => r.contributors === 2)).toBe(true)
    for (const r of reports.slice(1)) expect(r.slice(2).every((x) => x.contributors === 2)).toBe(true)
    expect(lateReports.at(-1)!.step).toBe(reports[1].at(-1)!.step)
  })
})

describe('roster change during an exchange (DPSGD over the memory mesh)', () => {
  it('a join elsewhere, while neighbour models are in flight, costs nobody a deadline: they are re-sent under the new epoch', async () => {
    const prob = makeLsqProblem({ n: 5, d: 6, m: 12, seed: 5 })
    // 40 ms one-way latency, so every step's models are in flight for a while; a long deadline,
    // so a lost model shows up as a slow step (and a missing contributor), not a quiet fold.
    const cfg = config({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0, stepDeadlineMs: 3000 })
    const net = new MemoryNetwork({ seed: 2, faults: { ...FAULTS.none, latencyMs: [40, 40] } })
    const peers = await startPeers(net, prob, cfg, [0, 1, 2, 3])
    await run(peers, 2)
    const timed = peers.map(async (p) => {
      const t0 = performance.now()
      const r = await p.inst.step()
      return { ms: performance.now() - t0, contributors: r.contributors }
    })
    // Halfway through the step's one-way latency a fifth peer joins: the epoch moves on while
    // every peer's model is still on the wire under the old one.
    await new Promise((r) => setTimeout(r, 20))
    net.join('p4')
    const results = await Promise.all(timed)
    for (const r of results) {
      expect(r.ms).toBeLessThan(1000)
      expect(r.contributors).toBe(2)
    }
    for (const p of peers) p.stop.abort()
  })
})
