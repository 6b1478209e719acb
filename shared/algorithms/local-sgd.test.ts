import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { FAULTS } from '../testing/faults'
import { testConfig as config } from '../testing/harness'
import { LsqCompute, makeLsqProblem, type LsqShard } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { maxAbsDiff } from '../math/vector'
import { roundPlan } from '../schedule'
import { sleep } from '../transport'
import { ALGORITHM_FACTORIES } from './index'
import type { AlgorithmInstance, LocalStepOptions, LocalStepResult, StepReport } from './types'

/**
 * Round alignment of local SGD after churn (docs/algorithms.md "Local SGD rounds and joiners"; docs/algorithms.md "Joining a running swarm"): a joiner starts at the
 * group's next round boundary, from the average the group computes there; a peer that fell out
 * of step (a stalled tab) lines up with the others' round again.
 */

/** LSQ compute whose local steps take a little time (so a join lands mid-round), records written params, can stall once. */
class PacedLsq extends LsqCompute {
  written: Float32Array[] = []
  stallAt = -1
  stallMs = 0
  private n = 0
  constructor(shard: LsqShard, private readonly paceMs: number) {
    super(shard, { batchSize: 5 })
  }
  override async localStep(o: LocalStepOptions): Promise<LocalStepResult> {
    await sleep(this.n++ === this.stallAt ? this.stallMs : this.paceMs)
    return super.localStep(o)
  }
  override async writeParams(p: Float32Array): Promise<void> {
    this.written.push(new Float32Array(p))
    return super.writeParams(p)
  }
}

interface Peer { id: string; mesh: MemoryMesh; compute: PacedLsq; inst: AlgorithmInstance; stop: AbortController; reports: StepReport[]; logs: { event: string; detail?: Record<string, unknown> }[] }

async function startPeer(net: MemoryNetwork, id: string, compute: PacedLsq, cfg: RoomConfig): Promise<Peer> {
  const mesh = net.mesh(id) ?? net.join(id)
  const stop = new AbortController()
  const logs: Peer['logs'] = []
  const log = (event: string, detail?: Record<string, unknown>) => void logs.push({ event, detail })
  const inst = await ALGORITHM_FACTORIES[cfg.algorithm]({ mesh, compute, config: cfg, signal: stop.signal, log, now: () => performance.now() })
  return { id, mesh, compute, inst, stop, reports: [], logs }
}

/** Steps until the global step reaches T (every peer ends on the same round boundary). */
async function runTo(p: Peer, T: number, onStep?: (r: StepReport) => void): Promise<void> {
  while ((p.reports.at(-1)?.globalStep ?? 0) < T) {
    const r = await p.inst.step()
    p.reports.push(r)
    onStep?.(r)
  }
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i])

describe('local SGD: a joiner starts at the next round boundary with the group average', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['local-sgd', {}],
    ['local-sgd averaging the momentum', { averageOptimizerState: true }],
    ['local-adamw', { algorithm: 'local-adamw', lr: 0.01 }],
  ]
  for (const [label, over] of cases) {
    it(label, async () => {
      const h = 4
      const T = 48
      const prob = makeLsqProblem({ n: 5, d: 6, m: 20, seed: 11, spread: 0.3 })
      const cfg = config({ algorithm: 'local-sgd', lr: 0.05, momentum: 0.5, sync: { kind: 'constant', h }, stepDeadlineMs: 1000, ...over })
      const net = new MemoryNetwork({ seed: 12, faults: FAULTS.lan })
      for (let i = 0; i < 4; i++) net.join(`p${i}`)
      const peers = await Promise.all([0, 1, 2, 3].map((i) => startPeer(net, `p${i}`, new PacedLsq(prob.shards[i], 2), cfg)))
      // The joiner arrives in the middle of round 2 (p0 has done 10 local steps: 2 of round 2's 4).
      let joinedAtT = 0
      let onJoin!: (p: Promise<Peer>) => void
      const joined = new Promise<Promise<Peer>>((resolve) => (onJoin = resolve))
      const runs = peers.map((p, i) => runTo(p, T, i === 0 ? (r) => {
        if (r.globalStep === 10) {
          joinedAtT = r.globalStep
          onJoin(startPeer(net, 'p4', new PacedLsq(prob.shards[4], 2), cfg))
        }
      } : undefined))
      const joiner = await (await joined)
      const boot = await joiner.inst.evalParams()
      await Promise.all([...runs, runTo(joiner, T)])

      // It starts right after a boundary (the group's t there), at or after the one following the join.
      const first = joiner.reports[0].globalStep - 1
      expect(first % h).toBe(0)
      expect(first).toBeGreaterThan(joinedAtT)
      // …from exactly the average the incumbents wrote at that boundary.
      expect(peers[1].compute.written.some((x) => same(x, boot))).toBe(true)
      // From that boundary on every averaging of every peer succeeds with all five members.
      for (const p of [...peers, joiner]) {
        const rounds = p.reports.filter((r) => r.globalStep % h === 0 && r.globalStep > first)
        expect(rounds.length).toBe((T - first) / h)
        for (const r of rounds) {
          expect(r.communicated).toBe(true)
          expect(r.contributors).toBe(5)
        }
      }
      // The incumbents' boundary at the join included the joiner too (weight 0).
      for (const p of peers) expect(p.reports.find((r) => r.globalStep === first)?.contributors).toBe(5)
      for (const p of [...peers, joiner]) p.stop.abort(), p.inst.dispose()
    })
  }
})

describe('local SGD: a stalled peer lines up with the others again', () => {
  it('after missing rounds, all four average together again on the same boundaries', async () => {
    const h = 3
    const T = 90
    const prob = makeLsqProblem({ n: 4, d: 6, m: 20, seed: 13, spread: 0.3 })
    const cfg = config({ algorithm: 'local-sgd', lr: 0.05, momentum: 0.5, sync: { kind: 'constant', h }, stepDeadlineMs: 60 })
    const net = new MemoryNetwork({ seed: 14, faults: FAULTS.lan })
    for (let i = 0; i < 4; i++) net.join(`p${i}`)
    const computes = [0, 1, 2, 3].map((i) => new PacedLsq(prob.shards[i], 1))
    // p3 freezes in round 2 for longer than the others' three attempts at that round's all-reduce.
    computes[3].stallAt = 7
    computes[3].stallMs = 500
    const peers = await Promise.all(computes.map((c, i) => startPeer(net, `p${i}`, c, cfg)))
    await Promise.all(peers.map((p) => runTo(p, T)))
    // Rounds were lost while p3 was frozen…
    for (const p of peers) expect(p.reports.some((r) => r.globalStep % h === 0 && !r.communicated)).toBe(true)
    // …then everyone averages together again, at the same global steps.
    for (const p of peers) {
      const last = p.reports.filter((r) => r.globalStep % h === 0).slice(-6)
      for (const r of last) {
        expect(r.communicated).toBe(true)
        expect(r.contributors).toBe(4)
      }
    }
    for (const p of peers) p.stop.abort(), p.inst.dispose()
  })
})

describe('local SGD: averageOptimizerState averages the moments', () => {
  /** Records the optimizer state each peer contributed at a boundary (what the all-reduce sums). */
  class StateLsq extends LsqCompute {
    contributed: Float32Array[][] = []
    override async readOptimizerState(): Promise<Float32Array[]> {
      const s = await super.readOptimizerState()
      this.contributed.push(s.map((v) => new Float32Array(v)))
      return s
    }
  }
  const cases: [string, Record<string, unknown>, number][] = [
    ['local-sgd: the momentum buffers', { algorithm: 'local-sgd', momentum: 0.5 }, 1],
    ['local-adamw: m and v (the step counter stays local)', { algorithm: 'local-adamw', lr: 0.01, weightDecay: 0 }, 2],
  ]
  for (const [label, over, fields] of cases) {
    for (const averaged of [true, false]) {
      it(`${label}${averaged ? '' : ' — control: kept local when off'}`, async () => {
        const h = 3
        const prob = makeLsqProblem({ n: 3, d: 5, m: 20, seed: 17, spread: 0.5 })
        const cfg = config({ lr: 0.05, sync: { kind: 'constant', h }, stepDeadlineMs: 2000, averageOptimizerState: averaged, ...over })
        const net = new MemoryNetwork({ seed: 18 })
        for (let i = 0; i < 3; i++) net.join(`p${i}`)
        const computes = [0, 1, 2].map((i) => new StateLsq(prob.shards[i], { batchSize: 5 }))
        const peers = await Promise.all(computes.map(async (compute, i) => {
          const stop = new AbortController()
          const inst = await ALGORITHM_FACTORIES[cfg.algorithm]({ mesh: net.mesh(`p${i}`)!, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now() })
          return { inst, stop }
        }))
        const rs = await Promise.all(peers.map(async (p) => {
          const out: StepReport[] = []
          for (let k = 0; k < h; k++) out.push(await p.inst.step())
          return out
        }))
        for (const r of rs) expect(r.at(-1)!.communicated).toBe(true)
        const after = await Promise.all(computes.map((c) => LsqCompute.prototype.readOptimizerState.call(c)))
        if (averaged) {
          // Equal weights (5 samples × 3 steps each): the plain mean of what each contributed.
          for (let f = 0; f < fields; f++) {
            const mean = new Float32Array(5)
            for (const c of computes) for (let k = 0; k < 5; k++) mean[k] += c.contributed[0][f][k]
            for (let k = 0; k < 5; k++) mean[k] /= 3
            for (const a of after) expect(maxAbsDiff(a[f], mean)).toBeLessThan(1e-6)
            // The contributions really differed (heterogeneous shards), so this is not trivially true.
            expect(maxAbsDiff(computes[0].contributed[0][f], computes[1].contributed[0][f])).toBeGreaterThan(1e-3)
          }
          if (fields === 2) for (const a of after) expect(a[2][0]).toBe(h) // Adam's t: local, not averaged
        } else {
          expect(computes.every((c) => c.contributed.length === 0)).toBe(true) // never even read
          expect(maxAbsDiff(after[0][0], after[1][0])).toBeGreaterThan(1e-3)
        }
        for (const p of peers) p.stop.abort(), p.inst.dispose()
      })
    }
  }
})

describe('local SGD: the H of every round follows QSR', () => {
  it('the H values in the StepReports are exactly roundPlan(sync, schedule, lr, T)', async () => {
    const T = 120
    // Cosine from 0.1 with α = 0.15: (α/η)² grows from 2 to H_max as η decays; warmup 20 → H_base.
    const sync = { kind: 'qsr', hBase: 2, alpha: 0.15, hMax: 16 } as const
    const schedule = { kind: 'cosine', warmupSteps: 20, minLr: 0.005 } as const
    const cfg = config({ algorithm: 'local-sgd', lr: 0.1, momentum: 0.5, totalSteps: T, sync, schedule, stepDeadlineMs: 2000 })
    const plan = roundPlan(cfg.sync, cfg.schedule, cfg.lr, T)
    expect(new Set(plan.map((r) => r.h)).size).toBeGreaterThan(3) // H really changes along the run
    const prob = makeLsqProblem({ n: 2, d: 4, m: 12, seed: 19, spread: 0.3 })
    const net = new MemoryNetwork({ seed: 20 })
    for (let i = 0; i < 2; i++) net.join(`p${i}`)
    const peers = await Promise.all([0, 1].map((i) => startPeer(net, `p${i}`, new PacedLsq(prob.shards[i], 0), cfg)))
    await Promise.all(peers.map((p) => runTo(p, T)))
    for (const p of peers) {
      // Rounds as the algorithm ran them: a round starts after each averaging; its steps report its H.
      const rounds: { t: number; h: number }[] = []
      let startT = 0
      for (const r of p.reports) {
        if (r.globalStep - 1 === startT) rounds.push({ t: startT, h: r.h! })
        else expect(r.h).toBe(rounds.at(-1)!.h)
        if (r.communicated) startT = r.globalStep
      }
      expect(rounds).toEqual(plan)
      expect(p.reports.filter((r) => r.communicated).length).toBe(plan.length)
    }
    for (const p of peers) p.stop.abort(), p.inst.dispose()
  })
})

describe('local SGD: peers that start together', () => {
  it('do not wait at a boundary for one another (nothing to join yet) and average at the first round', async () => {
    const h = 2
    const prob = makeLsqProblem({ n: 5, d: 4, m: 12, seed: 23, spread: 0.3 })
    const cfg = config({ algorithm: 'local-sgd', lr: 0.05, momentum: 0.5, sync: { kind: 'constant', h }, stepDeadlineMs: 2000 })
    const net = new MemoryNetwork({ seed: 24 })
    for (let i = 0; i < 5; i++) net.join(`p${i}`)
    const t0 = performance.now()
    // Some bootstrap requests meet peers that are already ready (at t = 0; here by the order in
    // which the instant mesh delivers):
    // those used to wait for round 0's boundary for up to 4 deadlines (8 s here).
    const peers = await Promise.all([0, 1, 2, 3, 4].map((i) => startPeer(net, `p${i}`, new PacedLsq(prob.shards[i], 0), cfg)))
    expect(performance.now() - t0).toBeLessThan(1000)
    await Promise.all(peers.map((p) => runTo(p, h)))
    for (const p of peers) expect(p.reports.at(-1)).toMatchObject({ communicated: true, contributors: 5 })
    for (const p of peers) p.stop.abort(), p.inst.dispose()
  })
})

describe('local SGD: a peer left behind in a round nobody else is in', () => {
  // Seen with 16 Node volunteers starting at once (bench/scale.ts): peers in two neighbouring
  // rounds each spent three whole deadlines per round waiting for the others, so they kept
  // missing one another and no averaging completed again.
  it('gives that round up after one deadline and joins the round the others are waiting in', async () => {
    const h = 2
    const deadlineMs = 100
    const prob = makeLsqProblem({ n: 4, d: 4, m: 12, seed: 33, spread: 0.3 })
    const cfg = config({ algorithm: 'local-sgd', lr: 0.05, momentum: 0.5, sync: { kind: 'constant', h }, stepDeadlineMs: deadlineMs })
    const net = new MemoryNetwork({ seed: 34, faults: FAULTS.lan })
    for (let i = 0; i < 4; i++) net.join(`p${i}`)
    const computes = [0, 1, 2, 3].map((i) => new PacedLsq(prob.shards[i], 1))
    // p3 freezes in its first local step for longer than the others' three attempts at round 0,
    // so they move on to round 1 and wait for it there, while it still has round 0 to finish.
    computes[3].stallAt = 0
    computes[3].stallMs = 4.5 * deadlineMs
    const peers = await Promise.all(computes.map((c, i) => startPeer(net, `p${i}`, c, cfg)))
    await Promise.all(peers.map((p) => runTo(p, 12)))
    const p3 = peers[3]
    const round0Timeouts = p3.logs.filter((l) => l.event === 'local-sgd/retry' && l.detail?.round === 0)
    // One deadline on round 0, then it asked, saw the others in round 1 and gave round 0 up…
    expect(round0Timeouts.length).toBe(1)
    expect(p3.logs.some((l) => l.event === 'local-sgd/give-up' && l.detail?.round === 0)).toBe(true)
    // …and the round the others were still retrying completed with all four.
    for (const p of peers) expect(p.reports.find((r) => r.globalStep === 2 * h)).toMatchObject({ communicated: true, contributors: 4 })
    for (const p of peers.slice(0, 3)) {
      // The others never gave a round up for being behind: nobody was ahead of them.
      expect(p.logs.some((l) => l.event === 'local-sgd/give-up')).toBe(false)
    }
    for (const p of peers) p.stop.abort(), p.inst.dispose()
  })
})
