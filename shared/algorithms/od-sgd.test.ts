import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { maxAbsDiff, sqDist } from '../math/vector'
import { FAULTS } from '../testing/faults'
import { configWith, runSteps, startPeer, startPeers, type LogLine } from '../testing/harness'
import { LsqCompute, makeLsqProblem, type LsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { odSgd } from './od-sgd'

/** Long deadlines unless a test needs one to fire (a loaded machine must not cut healthy rounds). */
const config = configWith({ algorithm: 'od-sgd', stepDeadlineMs: 5000 })

const start = (net: MemoryNetwork, id: string, compute: LsqCompute, cfg: RoomConfig, logs: LogLine[]) => startPeer(odSgd, net, id, compute, cfg, logs)

/** The first n shards' peers, each with an LsqCompute of minibatch `batch` (full batch by default). */
const startAll = (net: MemoryNetwork, prob: LsqProblem, n: number, cfg: RoomConfig, logs: LogLine[], batch?: number) =>
  startPeers(odSgd, net, prob.shards.slice(0, n).map((s) => new LsqCompute(s, { batchSize: batch })), cfg, logs)

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(5)
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

/**
 * Server trajectory of SSGD whose gradient at round t is evaluated at W_{t−delay} (full
 * batches), with the same fp32 storage and float64 accumulation order (peer order) as the PS:
 * ḡ = Σ s_i g_i / Σ s_i, v = βv + ḡ + wd·W, W = W − η v. Rounds t < warm use fresh gradients
 * (OD-SGD's SSGD warm start); the first compensated round (t = warm) still sees W_warm.
 */
async function staleSsgd(prob: LsqProblem, n: number, rounds: number, o: { lr: number; beta: number; wd: number; delay: number; warm: number }): Promise<Float32Array> {
  const refs = prob.shards.slice(0, n).map((s) => new LsqCompute(s))
  const d = prob.shards[0].d
  const hist: Float32Array[] = [new Float32Array(d)]
  const W = new Float32Array(d)
  const v = new Float32Array(d)
  for (let t = 0; t < rounds; t++) {
    const at = t <= o.warm ? hist[t] : hist[Math.max(0, t - o.delay)]
    const parts: { g: Float32Array; samples: number }[] = []
    for (const r of refs) {
      await r.writeParams(at)
      const g = await r.gradient()
      parts.push({ g: g.grad, samples: g.samples })
    }
    let total = 0
    for (const c of parts) total += c.samples
    for (let k = 0; k < d; k++) {
      let s = 0
      for (const c of parts) s += c.samples * c.g[k]
      v[k] = o.beta * v[k] + s / total + o.wd * W[k]
      W[k] -= o.lr * v[k]
    }
    hist.push(new Float32Array(W))
  }
  return W
}

describe('OD-SGD with local lr 0 is one-step-stale SSGD', () => {
  const n = 3
  const prob = makeLsqProblem({ n, d: 6, m: 12, seed: 21, spread: 1 })
  for (const warm of [0, 4]) {
    it(`matches the stale-gradient recursion exactly (warm start ${warm})`, async () => {
      const steps = 25
      const o = { lr: 0.05, beta: 0.9, wd: 1e-3, delay: 1, warm }
      const cfg = config({ lr: o.lr, momentum: o.beta, weightDecay: o.wd, localLr: 0, warmStartSteps: warm })
      const logs: LogLine[] = []
      const net = new MemoryNetwork({ seed: 22, faults: FAULTS.reorder })
      const peers = await startAll(net, prob, n, cfg, logs)
      await Promise.all(peers.map((p) => runSteps(p, steps)))
      // Each worker's last push (round steps−1) completes the server's round `steps`.
      await until(() => logs.filter((l) => l.event === 'od-sgd/server-step').length === steps, 'last server round')
      const W = await peers[0].inst.evalParams()
      const ref = await staleSsgd(prob, n, steps, o)
      expect(maxAbsDiff(W, ref)).toBe(0)
      // Every round had all n gradients (no partial averages hid a mismatch).
      for (const l of logs.filter((x) => x.event === 'od-sgd/server-step')) expect(l.detail?.contributors).toBe(n)
      // The comparison discriminates: fresh-gradient SSGD ends elsewhere.
      const fresh = await staleSsgd(prob, n, steps, { ...o, delay: 0 })
      expect(maxAbsDiff(fresh, ref)).toBeGreaterThan(1e-4)
      for (const p of peers) p.inst.dispose()
    })
  }

  it('the local compensating step changes the trajectory and both local optimizers converge', async () => {
    const cfgBase = { lr: 0.05, momentum: 0.9, warmStartSteps: 2 }
    const errs: Record<string, number> = {}
    for (const [name, extra] of [['sgd', { localLr: 0.25 }], ['cadcasgd', { localLr: 0.25, localOptimizer: 'cadcasgd', dcLambda: 2 }]] as const) {
      const logs: LogLine[] = []
      const net = new MemoryNetwork({ seed: 23 })
      const peers = await startAll(net, prob, n, config({ ...cfgBase, ...extra }), logs)
      await Promise.all(peers.map((p) => runSteps(p, 80)))
      await sleep(20)
      const W = await peers[0].inst.evalParams()
      errs[name] = sqDist(W, Float32Array.from(prob.xstar))
      for (const p of peers) p.inst.dispose()
    }
    const init = sqDist(new Float32Array(6), Float32Array.from(prob.xstar))
    expect(errs.sgd).toBeLessThan(0.05 * init)
    expect(errs.cadcasgd).toBeLessThan(0.05 * init)
    expect(errs.sgd).not.toBe(errs.cadcasgd)
  })
})

describe('OD-SGD partial rounds and churn', () => {
  const n = 4
  const prob = makeLsqProblem({ n: n + 1, d: 5, m: 16, seed: 24, spread: 1 })
  const cfg = config({ lr: 0.05, momentum: 0.5, localLr: 0.1, warmStartSteps: 3 })
  /** For the tests where a deadline must fire (a silent peer; the new PS skipping to the workers' round). */
  const shortCfg = { ...cfg, stepDeadlineMs: 150 }
  const err = (x: Float32Array) => sqDist(x, Float32Array.from(prob.xstar))

  it('a silent worker only delays rounds to the deadline; the server steps on the partial average', async () => {
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 25, faults: { ...FAULTS.none, silent: ['p3'] } })
    const peers = await startAll(net, prob, n, shortCfg, logs, 4)
    const reports = await Promise.all(peers.slice(0, 3).map((p) => runSteps(p, 8)))
    for (const r of reports) expect(r).toHaveLength(8)
    const partial = logs.filter((l) => l.event === 'od-sgd/server-step')
    expect(partial.length).toBeGreaterThan(0)
    for (const l of partial) {
      expect(l.detail?.expected).toBe(4)
      expect(l.detail?.contributors).toBeGreaterThanOrEqual(1)
      expect(l.detail?.contributors).toBeLessThanOrEqual(3) // p3's gradients never arrive
    }
    for (const p of peers) p.inst.dispose()
  })

  for (const graceful of [true, false]) {
    it(`the PS leaving mid-run (${graceful ? 'graceful hand-over' : 'ungraceful'}) blocks nobody; a new PS continues`, async () => {
      const logs: LogLine[] = []
      const net = new MemoryNetwork({ seed: 26, faults: FAULTS.lan })
      const peers = await startAll(net, prob, n, shortCfg, logs, 4)
      const [ps, ...workers] = peers
      const runs = workers.map((p) => runSteps(p, 50))
      const psRun = runSteps(ps, 1000)
      await sleep(50)
      if (graceful) await ps.inst.leave()
      net.leave(ps.id)
      ps.stop.abort()
      ps.inst.dispose()
      await psRun
      const reports = await Promise.all(runs)
      for (const r of reports) expect(r).toHaveLength(50)
      const start = logs.find((l) => l.peer === 'p1' && l.event === 'od-sgd/ps-start')
      expect(start).toBeDefined()
      if (graceful) expect(start?.detail?.fromHandover).toBe(true)
      const late = reports.flatMap((r) => r.slice(35))
      expect(late.filter((r) => r.communicated).length).toBeGreaterThan(late.length / 2)
      const W = await workers[0].inst.evalParams()
      expect(err(W)).toBeLessThan(0.2 * err(new Float32Array(5)))
      for (const p of workers) p.inst.dispose()
    })
  }

  it('a joiner starts at the server round with w̃ = Ŵ = W_t and ends near the others', async () => {
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 27, faults: FAULTS.lan })
    const peers = await startAll(net, prob, n, cfg, logs, 4)
    await Promise.all(peers.map((p) => runSteps(p, 20)))
    await until(() => logs.filter((l) => l.event === 'od-sgd/server-step').length === 20, 'round 20')
    const W = await peers[0].inst.evalParams()
    const joiner = await start(net, 'p9', new LsqCompute(prob.shards[n], { batchSize: 4 }), cfg, logs)
    expect([...(await joiner.compute.readParams())]).toEqual([...W])
    const jr = runSteps(joiner, 15)
    await Promise.all([...peers.map((p) => runSteps(p, 15)), jr])
    expect((await jr).filter((r) => r.communicated).length).toBeGreaterThan(10)
    const x = await peers[1].inst.evalParams()
    expect(sqDist(await joiner.inst.evalParams(), x)).toBeLessThan(0.05 * err(new Float32Array(5)))
    for (const p of [...peers, joiner]) p.inst.dispose()
  })
})

describe('OD-SGD hand-over carries the server momentum v', () => {
  /** f(x) = c·x: the gradient is c wherever the worker computes, so the server recursion is known in closed form. */
  class ConstGrad extends LsqCompute {
    constructor(private readonly c: Float32Array) {
      super({ m: 1, d: c.length, A: new Float64Array(c.length), b: new Float64Array(1) })
    }
    override async gradient() {
      return { grad: new Float32Array(this.c), loss: 0, samples: 1 }
    }
  }

  it('the successor\'s next round steps from the leaver\'s (W, v, t)', async () => {
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 28 })
    // Warm start longer than the test: every iteration waits for W_{t+1} (plain SSGD), so each
    // step() ends after its server round and the rounds are known exactly.
    const cfg = config({ lr: 0.1, momentum: 0.9, weightDecay: 0, warmStartSteps: 100 })
    const c0 = Float32Array.of(0.5, -1, 2)
    const c1 = Float32Array.of(1, 3, -2)
    for (const id of ['p0', 'p1']) net.join(id)
    const [ps, w] = await Promise.all([c0, c1].map((c, i) => start(net, `p${i}`, new ConstGrad(c), cfg, logs)))
    await Promise.all([runSteps(ps, 3), runSteps(w, 3)])
    // Server: v ← βv + ḡ, W ← W − ηv with ḡ = (c0 + c1)/2 (one sample each), 3 rounds.
    const W = new Float64Array(3)
    const v = new Float64Array(3)
    const round = (g: (k: number) => number) => {
      for (let k = 0; k < 3; k++) {
        v[k] = Math.fround(0.9 * v[k] + g(k))
        W[k] = Math.fround(W[k] - 0.1 * v[k])
      }
    }
    for (let r = 0; r < 3; r++) round((k) => (c0[k] + c1[k]) / 2)
    expect(maxAbsDiff(await ps.inst.evalParams(), Float32Array.from(W))).toBeLessThan(1e-6)
    await ps.inst.leave()
    net.leave(ps.id)
    ps.stop.abort()
    ps.inst.dispose()
    // p1 is the PS now; round 3 has one member (p1): ḡ = c1.
    await runSteps(w, 1)
    const lostV = Float32Array.from(W, (x, k) => x - 0.1 * c1[k]) // what v = 0 would give
    round((k) => c1[k])
    const got = await w.inst.evalParams()
    expect(maxAbsDiff(got, Float32Array.from(W))).toBeLessThan(1e-6)
    expect(maxAbsDiff(got, lostV)).toBeGreaterThan(0.1)
    const startLog = logs.find((l) => l.peer === 'p1' && l.event === 'od-sgd/ps-start')
    expect(startLog?.detail).toMatchObject({ fromHandover: true, t: 3 })
    w.inst.dispose()
  })
})
