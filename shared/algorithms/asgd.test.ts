import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { allFinite, maxAbsDiff, sqDist } from '../math/vector'
import { FAULTS } from '../testing/faults'
import { configWith, runSteps, startPeer, startPeers, type LogLine } from '../testing/harness'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { asgd } from './asgd'
import type { Compute, GradientResult } from './types'

/** Long deadlines unless a test needs one to fire (a loaded machine must not cut healthy pulls). */
const config = configWith({ algorithm: 'asgd', stepDeadlineMs: 5000 })

/**
 * Linear loss f(x) = c·x: the gradient is the constant c whatever x is, so the server's final W
 * tells exactly how many gradients of each worker it applied.
 */
class ConstGradCompute implements Compute {
  readonly schemaHash = 'const'
  readonly batchSize = 1
  private x: Float32Array
  constructor(private readonly c: Float32Array) {
    this.x = new Float32Array(c.length)
  }
  get paramCount() { return this.c.length }
  async readParams() { return new Float32Array(this.x) }
  async writeParams(p: Float32Array) {
    if (p.length !== this.x.length || !allFinite(p)) throw new Error('bad params')
    this.x = new Float32Array(p)
  }
  async gradient(): Promise<GradientResult> {
    return { grad: new Float32Array(this.c), loss: 0, samples: 1 }
  }
  async localStep(): Promise<{ loss: number; samples: number }> { throw new Error('unused') }
  async readOptimizerState() { return [] }
  async writeOptimizerState() {}
  resetOptimizer() {}
}

const start = <C extends Compute>(net: MemoryNetwork, id: string, compute: C, cfg: RoomConfig, logs: LogLine[]) => startPeer(asgd, net, id, compute, cfg, logs)
const startAll = <C extends Compute>(net: MemoryNetwork, computes: C[], cfg: RoomConfig, logs: LogLine[]) => startPeers(asgd, net, computes, cfg, logs)

describe('ASGD applies each gradient exactly once', () => {
  for (const [name, faults] of [['no faults', FAULTS.none], ['lossy + reordering links', { ...FAULTS.lossy, reorderRate: 0.3, reorderMs: 5 }]] as const) {
    it(`server W counts every applied gradient once (${name})`, async () => {
      const n = 3
      const steps = 30
      // Worker i pushes g = n·e_i; lr 1, β 0, n peers ⇒ each application moves W[i] by exactly −1.
      const computes = [0, 1, 2].map((i) => new ConstGradCompute(Float32Array.from({ length: n }, (_, k) => (k === i ? n : 0))))
      const logs: LogLine[] = []
      const net = new MemoryNetwork({ seed: 11, faults })
      // Lossy links: a lost push or reply must time out (short deadline) and the worker go on.
      const peers = await startAll(net, computes, config({ lr: 1, momentum: 0, stepDeadlineMs: faults === FAULTS.none ? 5000 : 100 }), logs)
      const reports = await Promise.all(peers.map((p) => runSteps(p, steps)))
      await sleep(50) // pushes still in flight are applied (or lost) by now
      const W = await peers[0].inst.evalParams() // p0 holds the PS role
      const applied = [0, 1, 2].map((i) => logs.filter((l) => l.event === 'asgd/applied' && l.detail?.from === `p${i}`).length)
      for (let i = 0; i < n; i++) {
        expect(W[i]).toBe(-applied[i])
        // A worker counts a step as communicated only when the server's reply came back.
        const acked = reports[i].filter((r) => r.communicated).length
        expect(applied[i]).toBeGreaterThanOrEqual(acked)
        expect(applied[i]).toBeLessThanOrEqual(steps)
      }
      if (faults === FAULTS.none) expect(applied).toEqual([steps, steps, steps])
      // Versions are consecutive: no application was repeated or skipped in the server's count.
      const versions = logs.filter((l) => l.event === 'asgd/applied').map((l) => l.detail?.version)
      expect(versions).toEqual(versions.map((_, k) => k + 1))
      for (const p of peers) p.inst.dispose()
    })
  }

  it('with momentum: W equals the hand-computed heavy-ball recursion over the applied sequence', async () => {
    // One worker besides the PS, PS idle: the order of applications is the worker's order.
    const c0 = Float32Array.of(0, 0)
    const c1 = Float32Array.of(2, -4)
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 12 })
    const [ps, w] = await startAll(net, [new ConstGradCompute(c0), new ConstGradCompute(c1)], config({ lr: 0.5, momentum: 0.5 }), logs)
    await runSteps(w, 4)
    // v_k = ½v_{k−1} + c/2 (n = 2): v = (1,−2), (1.5,−3), (1.75,−3.5), (1.875,−3.75); W = −½Σv.
    expect([...(await ps.inst.evalParams())]).toEqual([-3.0625, 6.125])
    expect([...(await w.compute.readParams())]).toEqual([-3.0625, 6.125])
    for (const p of [ps, w]) p.inst.dispose()
  })
})

describe('ASGD churn', () => {
  const n = 4
  const d = 5
  const prob = makeLsqProblem({ n: n + 1, d, m: 16, seed: 13, spread: 1 })
  const cfg = config({ lr: 0.05, momentum: 0.5 })
  const loss = (x: Float32Array) => sqDist(x, Float32Array.from(prob.xstar))

  for (const graceful of [true, false]) {
    it(`the PS leaving mid-run (${graceful ? 'graceful hand-over' : 'ungraceful'}) blocks nobody; a new PS takes over`, async () => {
      const logs: LogLine[] = []
      const net = new MemoryNetwork({ seed: 14, faults: FAULTS.lan })
      const peers = await startAll(net, prob.shards.slice(0, n).map((s) => new LsqCompute(s, { batchSize: 4 })), cfg, logs)
      const [ps, ...workers] = peers
      const runs = workers.map((p) => runSteps(p, 60))
      const psRun = runSteps(ps, 1000)
      await sleep(40)
      if (graceful) await ps.inst.leave()
      net.leave(ps.id)
      ps.stop.abort()
      ps.inst.dispose()
      await psRun
      const reports = await Promise.all(runs)
      for (const r of reports) expect(r).toHaveLength(60)
      expect(net.membership().roles.ps).toBe('p1')
      expect(logs.some((l) => l.peer === 'p1' && l.event === 'asgd/ps-start')).toBe(true)
      if (graceful) expect(logs.some((l) => l.peer === 'p1' && l.event === 'asgd/ps-start' && l.detail?.fromHandover)).toBe(true)
      // Training kept going under the new server: most late steps were served.
      const late = reports.flatMap((r) => r.slice(40))
      expect(late.filter((r) => r.communicated).length).toBeGreaterThan(late.length / 2)
      const W = await workers[0].inst.evalParams()
      expect(loss(W)).toBeLessThan(loss(new Float32Array(d)))
      for (const p of workers) p.inst.dispose()
    })
  }

  it('a joiner pulls W from the PS and ends near the others', async () => {
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 15, faults: FAULTS.lan })
    const peers = await startAll(net, prob.shards.slice(0, n).map((s) => new LsqCompute(s, { batchSize: 4 })), cfg, logs)
    await Promise.all(peers.map((p) => runSteps(p, 20)))
    const W = await peers[0].inst.evalParams()
    const joiner = await start(net, 'p9', new LsqCompute(prob.shards[n], { batchSize: 4 }), cfg, logs)
    expect([...(await joiner.compute.readParams())]).toEqual([...W])
    await Promise.all([...peers, joiner].map((p) => runSteps(p, 10)))
    const Wps = await peers[0].inst.evalParams()
    const xj = await joiner.compute.readParams()
    expect(sqDist(xj, Wps)).toBeLessThan(0.05 * loss(new Float32Array(d)))
    for (const p of [...peers, joiner]) p.inst.dispose()
  })
})

describe('ASGD hand-over carries the server momentum v', () => {
  it('the successor continues the heavy-ball recursion from the leaver\'s (W, v), not from v = 0', async () => {
    const logs: LogLine[] = []
    const net = new MemoryNetwork({ seed: 16 })
    const c0 = Float32Array.of(0.5, -1, 2)
    const c1 = Float32Array.of(1, 3, -2)
    const cfg = config({ lr: 0.1, momentum: 0.9, weightDecay: 0 })
    const [ps, w] = await startAll(net, [new ConstGradCompute(c0), new ConstGradCompute(c1)], cfg, logs)
    // Only the worker steps: the PS applies its 3 pushes with n = 2 (v ← βv + c1/2, W ← W − ηv).
    await runSteps(w, 3)
    const W = new Float64Array(3)
    const v = new Float64Array(3)
    const apply = (g: Float32Array, n: number) => {
      for (let k = 0; k < 3; k++) {
        v[k] = Math.fround(0.9 * v[k] + g[k] / n)
        W[k] = Math.fround(W[k] - 0.1 * v[k])
      }
    }
    for (let i = 0; i < 3; i++) apply(c1, 2)
    expect(maxAbsDiff(await ps.inst.evalParams(), Float32Array.from(W))).toBeLessThan(1e-6)
    await ps.inst.leave()
    net.leave(ps.id)
    ps.stop.abort()
    ps.inst.dispose()
    // p1 is the PS now (n = 1) and applies its own gradient on the handed-over state.
    await runSteps(w, 1)
    const lostV = Float32Array.from(W, (x, k) => x - 0.1 * c1[k]) // what v = 0 would give
    apply(c1, 1)
    const got = await w.inst.evalParams()
    expect(maxAbsDiff(got, Float32Array.from(W))).toBeLessThan(1e-6)
    expect(maxAbsDiff(got, lostV)).toBeGreaterThan(0.1)
    expect(logs.some((l) => l.peer === 'p1' && l.event === 'asgd/ps-start' && l.detail?.fromHandover === true)).toBe(true)
    w.inst.dispose()
  })
})
