import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { sqDist } from '../math/vector'
import { FAULTS } from '../testing/faults'
import { configWith, runSteps } from '../testing/harness'
import { gradientFromComputes, InProcessHogwildPool, type HogwildGradient } from '../testing/inprocess-hogwild'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { lapSgd } from './lap-sgd'
import type { AlgorithmInstance } from './types'

/** Long deadlines: departures abort the all-reduce through the roster, not by timing out. */
const config = configWith({ algorithm: 'lap-sgd', stepDeadlineMs: 5000 })

/** Pool that records how many local updates had run when each averaging delta was applied. */
class RecordingPool extends InProcessHogwildPool {
  updatesAtAverage: number[] = []
  override addInPlace(delta: Float32Array): void {
    this.updatesAtAverage.push(this.updates)
    super.addInPlace(delta)
  }
}

interface Peer { id: string; mesh: MemoryMesh; pool: RecordingPool; inst: AlgorithmInstance; stop: AbortController }

async function start(net: MemoryNetwork, id: string, init: Float32Array, grad: HogwildGradient, cfg: RoomConfig): Promise<Peer> {
  const mesh = net.mesh(id) ?? net.join(id)
  const stop = new AbortController()
  const pool = new RecordingPool(new Float32Array(init.length), grad)
  // The compute only provides the initial parameters (the model lives in the pool).
  const compute = new LsqCompute({ m: 1, d: init.length, A: new Float64Array(init.length), b: new Float64Array(1) }, { init })
  const inst = await lapSgd({ mesh, compute, config: cfg, signal: stop.signal, now: () => performance.now(), log: () => {}, hogwild: pool })
  return { id, mesh, pool, inst, stop }
}

/** A constant gradient c (a linear loss), yielding a timer tick so updaters interleave with the averaging. */
const constGrad = (c: number, d: number): HogwildGradient => async () => {
  await sleep(0)
  return { grad: new Float32Array(d).fill(c), loss: 0, samples: 16 }
}

describe('LAP-SGD delta averaging', () => {
  const inits = [Float32Array.of(1, 2, 3), Float32Array.of(5, -6, 7), Float32Array.of(0, 10, -1), Float32Array.of(2, 2, 7)]
  const avg0 = Float32Array.of(2, 2, 4) // hand-computed mean of `inits`

  it('with no concurrent updates equals plain averaging', async () => {
    const net = new MemoryNetwork({ seed: 31, faults: { ...FAULTS.none, latencyMs: [2, 2] } })
    for (let i = 0; i < 4; i++) net.join(`p${i}`)
    const cfg = config({ lr: 0.5, sync: { kind: 'constant', h: 4 }, updaters: 2 })
    const peers = await Promise.all(inits.map((x, i) => start(net, `p${i}`, x, constGrad(0, 3), cfg)))
    const reports = await Promise.all(peers.map((p) => runSteps(p, 1)))
    for (const r of reports) expect(r[0].communicated).toBe(true)
    for (const p of peers) expect([...(await p.inst.evalParams())]).toEqual([...avg0])
    for (const p of peers) p.inst.dispose()
  })

  it('keeps updates Δ made during the exchange: x = avg + Δ', async () => {
    // Latency 3 ms per hop ⇒ the ring all-reduce (6 hops) outlasts the local updates, which run
    // concurrently; H = 4 updates of lr 0.5 with gradient c_i = i+1 give Δ_i = −2(i+1) exactly.
    const net = new MemoryNetwork({ seed: 32, faults: { ...FAULTS.none, latencyMs: [3, 3] } })
    for (let i = 0; i < 4; i++) net.join(`p${i}`)
    const cfg = config({ lr: 0.5, sync: { kind: 'constant', h: 4 }, updaters: 2 })
    const peers = await Promise.all(inits.map((x, i) => start(net, `p${i}`, x, constGrad(i + 1, 3), cfg)))
    await Promise.all(peers.map((p) => runSteps(p, 1)))
    const delta = (i: number) => -2 * (i + 1)
    for (const [i, p] of peers.entries()) {
      // The averaging landed after some of this round's updates: they were concurrent with it.
      expect(p.pool.updatesAtAverage[0]).toBeGreaterThan(0)
      expect([...(await p.inst.evalParams())]).toEqual([...avg0].map((v) => v + delta(i)))
    }
    // Round 2: snapshots avg0 + Δ_i average to avg0 + mean Δ (= avg0 − 5); plus this round's Δ_i.
    await Promise.all(peers.map((p) => runSteps(p, 1)))
    for (const [i, p] of peers.entries())
      expect([...(await p.inst.evalParams())]).toEqual([...avg0].map((v) => v - 5 + delta(i)))
    for (const p of peers) p.inst.dispose()
  })
})

describe('LAP-SGD robust averaging (robust: on, trimmed mean)', () => {
  const inits = [Float32Array.of(1, 2, 3), Float32Array.of(5, -6, 7), Float32Array.of(0, 10, -1), Float32Array.of(2, 2, 7), Float32Array.of(2, 2, 4)]

  for (const robust of ['off', 'on'] as const) {
    it(`p4 sends 100 × its vector: ${robust === 'on' ? 'the honest peers get the hand-computed trimmed mean' : "the ring's weighted mean ends far from it"}`, async () => {
      const net = new MemoryNetwork({ seed: 35, faults: { ...FAULTS.none, latencyMs: [2, 2] } })
      for (let i = 0; i < 5; i++) net.join(`p${i}`)
      const bad = net.mesh('p4')!
      const send = bad.send.bind(bad)
      bad.send = (to, msg, sig) => send(to, msg.data && /^lap-sgd\/e/.test(msg.kind) ? { ...msg, data: msg.data.map((v) => 100 * v) } : msg, sig)
      const cfg = config({ lr: 0.5, sync: { kind: 'constant', h: 4 }, updaters: 2, robust })
      const peers = await Promise.all(inits.map((x, i) => start(net, `p${i}`, x, constGrad(0, 3), cfg)))
      await Promise.all(peers.map((p) => runSteps(p, 1)))
      // n = 5, b = 1 per coordinate, p4's (200, 200, 400) among them:
      // {0, 1, 2, 5, 200} → 8/3; {−6, 2, 2, 10, 200} → 14/3 (a tie kept); {−1, 3, 7, 7, 400} → 17/3.
      const trimmed = [8 / 3, 14 / 3, 17 / 3]
      for (const p of peers.slice(0, 4)) {
        const x = await p.inst.evalParams()
        if (robust === 'on') x.forEach((v, i) => expect(v).toBeCloseTo(trimmed[i], 5))
        // 'off': p4 scales the partial sums and reduced chunks it forwards on the ring too: far off.
        else expect(Math.max(...x.map((v, i) => Math.abs(v - trimmed[i])))).toBeGreaterThan(3)
      }
      for (const p of peers) p.inst.dispose()
    })
  }
})

describe('LAP-SGD churn', () => {
  const n = 4
  const d = 5
  const prob = makeLsqProblem({ n, d, m: 16, seed: 33, spread: 1 })
  // A moderate deadline: if a departure lands between two peers' completions of one round, the
  // round numbers realign only after failed attempts (each bounded by this deadline).
  const cfg = config({ lr: 0.02, sync: { kind: 'constant', h: 4 }, updaters: 2, stepDeadlineMs: 300 })
  const gradFor = (i: number) => gradientFromComputes([0, 1].map(() => new LsqCompute(prob.shards[i], { batchSize: 4 })))
  const zero = new Float32Array(d)

  it('a peer leaving mid-round never blocks the others; a joiner copies a peer and ends near them', async () => {
    const net = new MemoryNetwork({ seed: 34, faults: FAULTS.lan })
    for (let i = 0; i < n; i++) net.join(`p${i}`)
    const peers = await Promise.all(Array.from({ length: n }, (_, i) => start(net, `p${i}`, zero, gradFor(i), cfg)))
    const leaver = peers[2]
    const alive = peers.filter((p) => p !== leaver)
    const runs = alive.map((p) => runSteps(p, 30))
    const leaverRun = runSteps(leaver, 1000)
    await sleep(30)
    net.leave(leaver.id)
    leaver.stop.abort()
    leaver.inst.dispose()
    await leaverRun.catch(() => undefined)
    const reports = await Promise.all(runs)
    for (const r of reports) expect(r).toHaveLength(30)
    // After the departure the remaining three keep averaging.
    for (const r of reports) expect(r.slice(-10).filter((x) => x.communicated).length).toBeGreaterThanOrEqual(5)

    const xs = await Promise.all(alive.map((p) => p.inst.evalParams()))
    // The joiner trains on a copy of p0's shard: its own drift between averagings is then like
    // the incumbents', so "near" is not masked by data heterogeneity.
    const joiner = await start(net, 'p9', zero, gradFor(0), cfg)
    const boot = await joiner.inst.evalParams()
    expect(Math.min(...xs.map((x) => sqDist(boot, x)))).toBeLessThan(0.05 * sqDist(zero, xs[0]))
    const [jr] = await Promise.all([runSteps(joiner, 10), ...alive.map((p) => runSteps(p, 10))])
    expect(jr.filter((r) => r.communicated).length).toBeGreaterThanOrEqual(8)
    const after = await Promise.all(alive.map((p) => p.inst.evalParams()))
    const xj = await joiner.inst.evalParams()
    // Between averagings every peer drifts by its own H local updates, so "near" is measured
    // against the spread among the incumbents themselves.
    const spread = Math.max(...after.flatMap((a) => after.map((b) => sqDist(a, b))))
    expect(Math.max(...after.map((x) => sqDist(xj, x)))).toBeLessThan(4 * spread)
    expect(Math.max(...after.map((x) => sqDist(xj, x)))).toBeLessThan(0.2 * sqDist(zero, after[0]))
    for (const p of [...alive, joiner]) p.inst.dispose()
  })
})

describe('LAP-SGD without a Hogwild pool (a tab that is not cross-origin isolated)', () => {
  it('falls back to one updater on its own Compute, still averages with pooled peers, and says so', async () => {
    const d = 4
    const prob = makeLsqProblem({ n: 2, d, m: 16, seed: 35, spread: 1 })
    const cfg = config({ lr: 0.05, sync: { kind: 'constant', h: 3 }, updaters: 4 })
    const net = new MemoryNetwork({ seed: 36, faults: { ...FAULTS.none, latencyMs: [1, 1] } })
    net.join('p0')
    net.join('p1')
    const pooled = await start(net, 'p0', new Float32Array(d), gradientFromComputes([0, 1].map(() => new LsqCompute(prob.shards[0], { batchSize: 4 }))), cfg)
    const compute = new LsqCompute(prob.shards[1], { batchSize: 4 })
    const stop = new AbortController()
    const events: string[] = []
    // No `hogwild`: before the fallback this threw "lap-sgd needs ctx.hogwild".
    const lone = await lapSgd({ mesh: net.mesh('p1')!, compute, config: cfg, signal: stop.signal, now: () => performance.now(), log: (e) => events.push(e) })
    expect(events).toContain('lap-sgd-one-updater')
    const [a, b] = await Promise.all([runSteps(pooled, 4), runSteps({ inst: lone, stop }, 4)])
    expect(a.every((r) => r.communicated) && b.every((r) => r.communicated)).toBe(true)
    // Both made H = 3 local updates per round, and the last averaging brought them together.
    expect(b.at(-1)!.step).toBeGreaterThan(0)
    const [xa, xb] = await Promise.all([pooled.inst.evalParams(), lone.evalParams()])
    expect(sqDist(xa, xb)).toBeLessThan(sqDist(xa, new Float32Array(d)))
    pooled.inst.dispose()
    lone.dispose()
  })
})
