import { isValidVector } from '../math/vector'
import { nextH } from '../schedule'
import {
  allGatherWithRetry, allReduceWithRetry, foldHandovers, handOverModel, LeaveInbox, leaveTargets, lrFor, others, requestState, robustMean,
  startStateResponder, type PeerState,
} from './common'
import { linkTopology } from './descriptors'
import { gradientFromComputes, InProcessHogwildPool } from './inprocess-hogwild'
import type { AlgorithmFactory, AlgorithmInstance, HogwildPool, StepReport } from './types'

/**
 * LAP-SGD, "Local SGD meets asynchrony" (docs/algorithms.md "LAP-SGD"): U Hogwild updaters per tab share one
 * parameter vector (ctx.hogwild) and never wait for the network. One `step()` is one round:
 *
 *   snap = x (non-atomic copy)
 *   concurrently: { run H more local updates (across all U updaters) }
 *                 { avg = sample-weighted all-reduce mean of snap over the roster;
 *                   x += avg − snap }                      (docs/algorithms.md "Non-blocking averaging", in place, racing by design)
 *
 * With no update during the collective this is x ← avg; updates Δ made meanwhile survive:
 * x = avg + Δ. H is counted in *total* local updates (docs/algorithms.md "Counting H over U updaters") and follows `config.sync` (constant
 * or QSR) keyed to the global step t, which here counts local updates of one peer. A failed
 * all-reduce (deadline, churn) skips this averaging; the peer then adopts the round of the peer
 * furthest ahead so the next all-reduce lines up again.
 *
 * Round alignment: `round` and `t` name the *next* averaging this peer takes part in; they move
 * to the next round the moment an averaging settles (not when the step's Hogwild batch ends),
 * and that is what the state responder reports. A joiner copies x, t and round of the peer
 * furthest ahead, so its first step joins exactly the group's next all-reduce (docs/algorithms.md "LAP-SGD under churn"), whether
 * the incumbents are inside the current averaging (it joins that one: the roster change restarts
 * it with the joiner) or past it and still running their batch (it joins the next one).
 */

/** The state of the peer furthest ahead: everyone converges on the maximum round after a failure. */
function latest(states: readonly PeerState[]): PeerState | undefined {
  let best: PeerState | undefined
  for (const s of states) if (!best || (s.extra.round ?? 0) > (best.extra.round ?? 0)) best = s
  return best
}

class LapSgd implements AlgorithmInstance {
  readonly name = 'lap-sgd' as const
  private t = 0
  private round = 0
  private stepCount = 0
  /** Samples behind the current x since the last averaging: the weight of this peer's snapshot. */
  private weight = 1
  private stopResponder: () => void = () => undefined
  private inbox: LeaveInbox | null = null
  private readonly d: number

  constructor(private readonly ctx: Parameters<AlgorithmFactory>[0], private readonly pool: HogwildPool) {
    this.d = ctx.compute.paramCount
  }

  async init(): Promise<void> {
    const { compute, mesh } = this.ctx
    this.pool.overwrite(await compute.readParams())
    let ready = false
    this.stopResponder = startStateResponder(this.ctx, async () =>
      ready ? { params: this.pool.snapshot(), opt: [], step: this.stepCount, globalStep: this.t, extra: { round: this.round } } : null)
    const states = await requestState(this.ctx, others(this.ctx))
    const s = latest(states)
    if (s && isValidVector(s.params, this.d)) {
      this.pool.overwrite(s.params)
      this.t = s.globalStep
      this.round = s.extra.round ?? 0
      mesh.clock.observe(this.t)
      this.ctx.log('lap-sgd/bootstrap', { t: this.t, round: this.round })
    }
    ready = true
    this.inbox = new LeaveInbox(this.ctx)
  }

  async step(): Promise<StepReport> {
    const { config, mesh, signal } = this.ctx
    const hs = this.inbox?.take() ?? []
    if (hs.length) {
      // A peer's graceful leave (docs/algorithms.md "Graceful leave"), folded in once as a delta so it composes with the
      // updaters' Hogwild writes like the averaging does (docs/algorithms.md "Non-blocking averaging").
      const before = this.pool.snapshot()
      const after = before.slice()
      foldHandovers(after, hs)
      for (let i = 0; i < after.length; i++) after[i] -= before[i]
      this.pool.addInPlace(after)
    }
    const lr = lrFor(this.ctx, this.t)
    const h = nextH(config.sync, this.t, lr, config.totalSteps, config.schedule.warmupSteps)
    const snap = this.pool.snapshot()
    const w = this.weight
    const d = this.d
    const round = this.round
    const t0 = this.t
    /** The next averaging starts at t0 + h: published as soon as this one settles. */
    const settle = () => {
      this.round = round + 1
      this.t = t0 + h
    }
    // Started first so the collective overlaps with the Hogwild batch below (non-blocking averaging).
    // Robust (docs/algorithms.md "Robust aggregation"): unweighted [snap, w], combined by
    // common.ts robustMean (the trimmed mean of the contributors, unweighted).
    const robust = this.ctx.config.robust === 'on'
    const build = () => {
      const v = new Float32Array(d + 1)
      for (let i = 0; i < d; i++) v[i] = robust ? snap[i] : w * snap[i]
      v[d] = w
      return v
    }
    const averaging = (robust
      ? allGatherWithRetry(this.ctx, 'lap-sgd', round, build).then((r) => robustMean(r, d))
      : allReduceWithRetry(this.ctx, 'lap-sgd', round, build)
    ).then((res) => {
      settle()
      if (!res) return null
      const inv = 1 / res.sum[d]
      const delta = new Float32Array(d)
      for (let i = 0; i < d; i++) delta[i] = res.sum[i] * inv - snap[i]
      if (!isValidVector(delta, d)) return null
      this.pool.addInPlace(delta)
      return res.members
    }, (e: unknown) => {
      settle()
      throw e
    })
    const batch = this.pool.run(h, lr, signal)
    const [members, b] = await Promise.all([averaging, batch])
    if (members === null) {
      this.ctx.log('lap-sgd/averaging-skipped', { round })
      await this.resync()
    }
    this.weight = Math.max(1, b.samples)
    this.stepCount++
    mesh.clock.advance(this.t)
    return {
      step: this.stepCount, globalStep: this.t, loss: b.loss, samples: b.samples, lr, h,
      communicated: members !== null, ...(members !== null ? { contributors: members } : {}),
    }
  }

  /**
   * After a failed averaging: if another peer is already in a later round (it completed a round
   * we failed, or we are a slow tab), continue at its round so the next all-reduce attempts line
   * up again (its responder reports the next averaging it takes part in). Bounded by a deadline.
   */
  private async resync(): Promise<void> {
    const states = await requestState(this.ctx, others(this.ctx))
    const s = latest(states)
    if (s && (s.extra.round ?? 0) > this.round) {
      this.ctx.log('lap-sgd/resync', { from: this.round, to: s.extra.round })
      this.round = s.extra.round ?? 0
      this.t = Math.max(this.t, s.globalStep)
    }
  }

  async evalParams(): Promise<Float32Array> {
    return this.pool.snapshot()
  }

  async leave(): Promise<void> {
    await handOverModel(this.ctx, this.pool.snapshot(), leaveTargets(this.ctx, 0, linkTopology(this.ctx.config)))
    this.dispose()
  }

  dispose(): void {
    this.stopResponder()
    this.inbox?.dispose()
  }
}

/**
 * Without a platform pool (a tab that is not cross-origin isolated has no SharedArrayBuffer, so
 * no workers can share x) the tab still takes part with ONE updater in its own thread, on its
 * own Compute: U concurrent in-process updaters would race on that Compute's parameters. The
 * averaging is the same, so the swarm trains on; the volunteer page says why (CapabilityNotice).
 */
async function oneUpdaterPool(ctx: Parameters<AlgorithmFactory>[0]): Promise<HogwildPool> {
  ctx.log('lap-sgd-one-updater', { wanted: ctx.config.updaters, why: 'no shared memory (page not cross-origin isolated)' })
  return new InProcessHogwildPool(await ctx.compute.readParams(), gradientFromComputes([ctx.compute]), { updaters: 1 })
}

export const lapSgd: AlgorithmFactory = async (ctx) => {
  const pool = ctx.hogwild ?? (await oneUpdaterPool(ctx))
  if (ctx.hogwild) ctx.hogwild.updaters = ctx.config.updaters
  const inst = new LapSgd(ctx, pool)
  await inst.init()
  return inst
}
