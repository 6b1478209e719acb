import { describe, expect, it } from 'vitest'
import { parseRoomConfig, type RoomConfig } from '../config'
import { FAULTS } from '../testing/faults'
import { LsqCompute, makeLsqProblem, type LsqShard } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { ALGORITHM_FACTORIES } from './index'
import type { AlgorithmInstance, LocalStepOptions, LocalStepResult, StepReport } from './types'

/**
 * Round alignment of local SGD after churn (ALGORITHMS.md §6.6, §9.3): a joiner starts at the
 * group's next round boundary, from the average the group computes there; a peer that fell out
 * of step (a stalled tab) lines up with the others' round again.
 */

function config(over: Record<string, unknown>): RoomConfig {
  const r = parseRoomConfig({ schedule: { kind: 'constant', warmupSteps: 0 }, ...over })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

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

interface Peer { id: string; mesh: MemoryMesh; compute: PacedLsq; inst: AlgorithmInstance; stop: AbortController; reports: StepReport[] }

async function startPeer(net: MemoryNetwork, id: string, compute: PacedLsq, cfg: RoomConfig): Promise<Peer> {
  const mesh = net.mesh(id) ?? net.join(id)
  const stop = new AbortController()
  const inst = await ALGORITHM_FACTORIES[cfg.algorithm]({ mesh, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now() })
  return { id, mesh, compute, inst, stop, reports: [] }
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

describe('local SGD: a joiner starts at the next round boundary with the group average (§6.6)', () => {
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
