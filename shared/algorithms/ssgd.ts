import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import { isValidVector } from '../math/vector'
import { scaledLrAt } from '../schedule'
import { trimCount, trimmedMean } from '../robust/trimmed-mean'
import { CENTERED_CLIP_GATE_RATIO, centeredClip } from '../robust/centered-clip'
import { ClipGate } from '../robust/clip'
import type { PeerId } from '../transport'
import { allGatherWithRetry, allReduceWithRetry, medianState, requestState, ringNeighbours, startStateResponder, type PeerState } from './common'
import { SSGD_COLLECTIVE } from './message-kinds'

/**
 * Robust mode (`robust: 'on'`, docs/algorithms.md "Robust aggregation"): the two ring sums become
 * all-gathers (common.ts allGatherWithRetry). The gradient vector is [g, b, flag], unweighted (a
 * member's claimed batch b would otherwise scale its pull): ḡ is the centered clipping
 * (Karimireddy, He & Jaggi 2021; shared/robust/centered-clip.ts) of the members' gradients around
 * the bias-corrected running mean of past aggregates that the momentum buffer holds (see
 * clipCenter), the global batch is n × the trimmed mean of the b's, and the out-of-sync count
 * counts flags ≥ ½. The result is put back in the ring's shape (Σ = ḡ · total, total, count), so
 * the update below is the same code. Every member of a completed gather holds the same vectors
 * and, being in sync, the same x and m, so the same center and result. When a member is flagged
 * out of sync its center differs, so that round every member starts from the coordinate-wise
 * trimmed mean of the set instead (shared/robust/trimmed-mean.ts; a pure function of the set).
 * The resync gathers [x, m] and takes their trimmed mean. A member whose gradient lies more than
 * CENTERED_CLIP_GATE_RATIO radii out in GATE_ROUNDS rounds in a row is reported (clip.ts
 * ClipGate), by every member. A member that equivocates (sends
 * different vectors to different members) can make the replicas differ by at most what the clip
 * lets through, which the resync and resyncEvery repair.
 */

/**
 * SSGD (docs/algorithms.md "SSGD"): gradients all-reduced over the whole roster every step (ring all-reduce, sample
 * weighted), then heavy-ball momentum with coupled weight decay, identical on every peer:
 * m = βm + ḡ + λx, x = x − γm. A joiner receives the exact x, m and step (docs/algorithms.md "SSGD under churn"). With
 * `lrScaling: linear`, γ follows the global batch of each step (Goyal et al., docs/algorithms.md "SSGD linear learning-rate scaling").
 *
 * Resync. When every all-reduce attempt of a step fails, the peer steps with its own gradient
 * and is then out of sync (docs/algorithms.md "SSGD under churn"'s invariant "identical on all members" is broken). It says so in
 * the next gradient all-reduce: the vector carries a flag slot, so every member of a successful
 * all-reduce sees the same count of out-of-sync peers and, if it is not 0, all of them average
 * x and m (one more all-reduce, same step) before the update. The same happens every
 * `resyncEvery` steps as a safety net (int8 forwarding can still differ in the last bit between
 * hops; fp16 and fp32 keep replicas bit-identical). Members end bit-identical.
 */
/**
 * The out-of-sync count is a sum of 0/1 flags: a resync is due when it is at least ½. A threshold
 * rather than `> 0` keeps the decision the same on every member when a lossy wire codec decodes
 * the slot with a small error (fp16 keeps small integers exact; int8's per-block scale can still
 * erase a flag that shares its block with large values).
 */
const FLAG_THRESHOLD = 0.5

/**
 * Attempts of a resync all-reduce. Fewer than a gradient step's 3: a failed resync only leaves
 * this peer flagged, and the next step's all-reduce starts another.
 */
const RESYNC_ATTEMPTS = 2

/** Held retries of a step whose all-reduce failed while a ring neighbour is at or behind its step (see neighbourSteps). */
const MAX_HOLDS = 4
/** Attempts of each held retry. */
const HOLD_ATTEMPTS = 2
/** Catch-ups (adopting a neighbour's later state) within one step() call before it falls back. */
const MAX_CATCH_UPS = 2
/**
 * Consecutive step() calls that may end held (the step not taken, see `held`) before the peer
 * falls back to its own gradient. Bounds the wait on a neighbour that answers state requests but
 * never completes a round.
 */
const MAX_HELD_CALLS = 4

/** The sum of a gradient or resync all-reduce and how many members it spanned. */
type Reduced = { sum: Float32Array; members: number }

/** A step's gradient and the all-reduce chunks already consumed for it (see `SsgdPeer.held`). */
interface HeldStep {
  grad: Float32Array
  loss: number
  samples: number
  received: Map<string, Float32Array>
  /** Consecutive step() calls that ended held on this gradient. */
  calls: number
}

/** How a step's gradient all-reduce ended, holds and catch-ups included. */
type GradientRound =
  | { caughtUp: true }
  | { caughtUp: false; res: Reduced | null; neighbourBehind: boolean }

/** Robust mode's resync: the trimmed mean of the gathered [x, m] vectors × members, the ring sum's shape. */
function robustSum(res: { vectors: Float32Array[]; members: number } | null): Reduced | null {
  if (!res) return null
  const mean = trimmedMean(res.vectors)
  for (let i = 0; i < mean.length; i++) mean[i] *= res.members
  return { sum: mean, members: res.members }
}

export const ssgd: AlgorithmFactory = async (ctx) => (await SsgdPeer.start(ctx)).instance()

class SsgdPeer {
  private readonly d: number
  private x: Float32Array
  private m: Float32Array
  private step = 0
  private t = 0
  private ready = false
  /** This peer's x, m may differ from the group's (it fell back, or a resync failed). */
  private outOfSync = false
  /**
   * A step whose all-reduce failed while a ring neighbour was behind it: the gradient and
   * the chunks already consumed are kept, and the next step() call retries the same round with
   * them instead of stepping on alone. Stepping on would put this peer a step ahead of the
   * neighbour that is about to join the round, and the two would chase each other; holding
   * inside one call alone is not enough when deadlines expire under CPU load.
   */
  private held: HeldStep | null = null
  /** config.robust is 'on': all-gathers and robust combiners instead of ring sums (see the top of the file). */
  private readonly robust: boolean
  /** Robust mode's float64 scratch of d for centeredClip, kept across steps. */
  private clipScratch: Float64Array | null = null
  /** Robust mode's sanity gate: a member whose gradient is clipped hard round after round is reported. */
  private readonly gate = new ClipGate('all-gathered gradient', CENTERED_CLIP_GATE_RATIO)
  private readonly stopResponder: () => void

  static async start(ctx: AlgorithmContext): Promise<SsgdPeer> {
    const peer = new SsgdPeer(ctx, await ctx.compute.readParams())
    // Exact state from a ready ring neighbour (all members hold the same state; asking only the
    // neighbours keeps a joiner to the two links the all-reduce uses). Of two answers the one at
    // the lower step (requestState bounded both): a neighbour claiming to be far ahead is not
    // believed over one that is not, and a step behind is what the catch-up below repairs.
    const states: PeerState[] = await requestState(ctx, ringNeighbours(ctx))
    const s = medianState(states, (a, b) => a.step - b.step || a.globalStep - b.globalStep)
    if (s) await peer.adopt(s)
    peer.ready = true
    return peer
  }

  private constructor(private readonly ctx: AlgorithmContext, x: Float32Array) {
    this.d = ctx.compute.paramCount
    this.x = x
    this.m = new Float32Array(this.d)
    this.robust = ctx.config.robust === 'on'
    this.stopResponder = startStateResponder(ctx, async () =>
      this.ready ? { params: new Float32Array(this.x), opt: [new Float32Array(this.m)], step: this.step, globalStep: this.t, extra: {} } : null)
  }

  instance(): AlgorithmInstance {
    return {
      name: 'ssgd',
      step: () => this.takeStep(),
      evalParams: async () => new Float32Array(this.x),
      leave: async () => {
        this.stopResponder()
      },
      dispose: () => {
        this.stopResponder()
      },
    }
  }

  /** Takes a group member's exact x, m and step (they are the same on every member). */
  private async adopt(s: PeerState): Promise<void> {
    this.x = s.params
    this.m = s.opt[0]?.length === this.d ? s.opt[0] : new Float32Array(this.d)
    // A held gradient belongs to the old x and step.
    this.held = null
    this.step = s.step
    this.t = s.globalStep
    await this.ctx.compute.writeParams(this.x)
    this.ctx.mesh.clock.observe(this.t)
  }

  /**
   * After every all-reduce attempt of a step failed, the ring neighbours' steps say why. A
   * neighbour at a later step means the group went on without us (we were slow, or joined while
   * it was mid-step): our rounds would not line up with its again by themselves, so we take its
   * exact state and do that step instead. A neighbour at an earlier step is about to do the
   * same with us, and one at our step is trying this very round, so we hold: retry this round
   * with the same gradient instead of stepping on alone. Without the hold, two halves of the
   * ring that failed at the same moment chase each other for ever (those behind adopt, those
   * ahead fall back and step on, one step apart again). Holds are bounded: a neighbour that
   * stays up but never completes a round (hung) leaves us to fall back.
   */
  private async neighbourSteps(): Promise<PeerState[]> {
    return (await requestState(this.ctx, ringNeighbours(this.ctx))).filter((s) => isValidVector(s.params, this.d))
  }

  /** Averages x and m over the group (same step as the gradient all-reduce); true on success. */
  private async resync(outOfSyncPeers: number): Promise<boolean> {
    const d = this.d
    const xs = this.x
    const ms = this.m
    const build = () => {
      const v = new Float32Array(2 * d)
      v.set(xs, 0)
      v.set(ms, d)
      return v
    }
    const opts = { attempts: RESYNC_ATTEMPTS }
    const res = this.robust ? robustSum(await allGatherWithRetry(this.ctx, SSGD_COLLECTIVE.resync, this.step, build, opts))
      : await allReduceWithRetry(this.ctx, SSGD_COLLECTIVE.resync, this.step, build, opts)
    if (!res || !isValidVector(res.sum, 2 * d)) {
      this.ctx.log('ssgd/resync-failed', { step: this.step })
      return false
    }
    const inv = 1 / res.members
    this.x = res.sum.slice(0, d).map((v) => v * inv)
    this.m = res.sum.slice(d).map((v) => v * inv)
    this.ctx.log('ssgd/resync', { step: this.step, members: res.members, outOfSyncPeers })
    return true
  }

  private async takeStep(): Promise<StepReport> {
    for (let pass = 0; ; pass++) {
      this.t = Math.max(this.t, this.step)
      const g = await this.nextGradient()
      const round = await this.gradientRound(g, pass)
      // A catch-up adopted a later step: compute that step's gradient instead.
      if (round.caughtUp) continue
      const { res, neighbourBehind } = round
      if (!res && neighbourBehind && g.calls + 1 < MAX_HELD_CALLS && !this.ctx.signal.aborted) return this.hold(g)
      return this.apply(g, res)
    }
  }

  /** The held step's gradient (taken once), or a fresh one. */
  private async nextGradient(): Promise<HeldStep> {
    const held = this.held
    if (held) {
      this.held = null
      return held
    }
    const { grad, loss, samples } = await this.ctx.compute.gradient()
    return { grad, loss, samples, received: new Map<string, Float32Array>(), calls: 0 }
  }

  /** The gradient all-reduce of this step, then, while it fails, catch-ups and holds (see neighbourSteps). */
  private async gradientRound(g: HeldStep, pass: number): Promise<GradientRound> {
    const { ctx, d } = this
    // Sample-weighted sum: [Σ b_i g_i, Σ b_i, #out of sync] in one vector, so ḡ = Σ b_i g_i / Σ b_i.
    const flag = this.outOfSync ? 1 : 0
    const grad = g.grad
    const b = g.samples
    const build = () => {
      const v = new Float32Array(d + 2)
      // Robust: unweighted (see robustGradient).
      if (this.robust) v.set(grad)
      else for (let i = 0; i < d; i++) v[i] = grad[i] * b
      v[d] = b
      v[d + 1] = flag
      return v
    }
    const received = g.received
    const reduce = (attempts?: number) => {
      const opts = attempts === undefined ? { received } : { received, attempts }
      return this.robust ? this.robustGradient(build, opts) : allReduceWithRetry(ctx, SSGD_COLLECTIVE.gradient, this.step, build, opts)
    }
    // Shared by the first try and the holds: a held retry of the same round reuses the chunks
    // already consumed (the neighbours' re-sent copies are duplicates the mesh drops).
    let res = await reduce()
    /** The last look at the ring neighbours found one behind this step and none ahead. */
    let neighbourBehind = false
    for (let hold = 0; !res && hold < MAX_HOLDS && !ctx.signal.aborted; hold++) {
      const near = await this.neighbourSteps()
      const ahead = near.filter((s) => s.step > this.step)
      neighbourBehind = ahead.length === 0 && near.some((s) => s.step < this.step)
      if (ahead.length > 0 && pass < MAX_CATCH_UPS) {
        const s = ahead.reduce((x1, x2) => (x2.step > x1.step ? x2 : x1))
        ctx.log('ssgd/catch-up', { from: this.step, to: s.step })
        await this.adopt(s)
        this.outOfSync = false
        return { caughtUp: true }
      }
      if (!near.some((s) => s.step <= this.step)) break
      ctx.log('ssgd/hold', { step: this.step, hold })
      res = await reduce(HOLD_ATTEMPTS)
    }
    return { caughtUp: false, res, neighbourBehind }
  }

  /** Robust mode's gradient round: the gathered [g, b, flag] vectors in the ring's [Σ b·ḡ, Σ b, count] shape (see the top of the file). */
  private async robustGradient(build: () => Float32Array, opts: { received: Map<string, Float32Array>; attempts?: number }): Promise<Reduced | null> {
    const { d } = this
    const res = await allGatherWithRetry(this.ctx, SSGD_COLLECTIVE.gradient, this.step, build, opts)
    if (!res) return null
    const { vectors, members, roster } = res
    const flagged = vectors.filter((v) => v[d + 1] >= FLAG_THRESHOLD).length
    const sum = new Float32Array(d + 2)
    const center = sum.subarray(0, d)
    if (flagged > 0) trimmedMean(vectors, trimCount(members), 0, d, center)
    else this.clipCenter(center)
    this.clipScratch ??= new Float64Array(d)
    const clip = centeredClip(vectors, center, { out: center, scratch: this.clipScratch })
    this.judge(roster, clip.dists, clip.tau)
    const total = members * trimmedMean(vectors, trimCount(members), d, d + 1)[0]
    for (let i = 0; i < d; i++) sum[i] *= total
    sum[d] = total
    sum[d + 1] = flagged
    return { sum, members }
  }

  /** Feeds the sanity gate with a round's distances (roster order); reports what it flags while the member is in the roster. */
  private judge(roster: readonly PeerId[], dists: Float64Array, tau: number): void {
    const { mesh } = this.ctx
    for (let k = 0; k < roster.length; k++) {
      if (roster[k] === mesh.self) continue
      const why = this.gate.observe(roster[k], dists[k], tau)
      if (!why) continue
      this.ctx.log('robust/suspect', { peer: roster[k], why })
      if (mesh.membership().peers.includes(roster[k])) mesh.reportSuspect(roster[k], why)
    }
  }

  /**
   * Robust mode's clipping center: the mean gradient the momentum buffer remembers. With
   * m_t = βm_{t−1} + ḡ_t + λx_{t−1}, (1 − β)·m is a running mean of ḡ + λx, debiased like Adam's
   * first moment by 1 − β^step (m starts at 0), minus λx; with β = 0 it is the previous round's
   * aggregate, the paper's center. x, m and step are what every in-sync member holds bit-identically.
   */
  private clipCenter(out: Float32Array): void {
    const { x, m, step } = this
    const beta = this.ctx.config.momentum
    const wd = this.ctx.config.weightDecay
    const debias = 1 - beta ** step
    if (step === 0 || !(debias > 0)) {
      for (let i = 0; i < out.length; i++) out[i] = -wd * x[i]
      return
    }
    const k = (1 - beta) / debias
    for (let i = 0; i < out.length; i++) out[i] = k * m[i] - wd * x[i]
  }

  /** Ends the call with the step not taken; the next call retries its round with `g`. */
  private hold(g: HeldStep): StepReport {
    const { config } = this.ctx
    const { grad, loss, samples, received } = g
    const held = { grad, loss, samples, received, calls: g.calls + 1 }
    this.held = held
    this.ctx.log('ssgd/held', { step: this.step, calls: held.calls })
    // Nothing applied: same step, no samples yet (they count when the held step is taken).
    return {
      step: this.step, globalStep: this.t, loss, samples: 0, communicated: false, contributors: 1,
      lr: scaledLrAt(config.schedule, config.lr, config.lrScaling, samples, this.t, config.totalSteps),
    }
  }

  /** The momentum update with the group's mean gradient, or with this peer's own when `res` is null (fallback). */
  private async apply(g: HeldStep, reduced: Reduced | null): Promise<StepReport> {
    const { ctx, d } = this
    const { config, mesh } = ctx
    let res = reduced
    if (res && !(res.sum[d] >= 1)) {
      // Every member adds its batch (≥ 1 sample): a smaller total is a forged weight (docs/security.md),
      // whose 1/total would blow the mean up (and 0 makes the lr scaling throw). Every member of
      // the all-reduce holds the same sum, so all of them fall back alike.
      ctx.log('ssgd/bad-weight', { step: this.step, total: res.sum[d] })
      res = null
    }
    if (!res) {
      ctx.log('ssgd/fallback', { step: this.step })
      this.outOfSync = true
    } else if (res.sum[d + 1] >= FLAG_THRESHOLD || (config.resyncEvery > 0 && this.step > 0 && this.step % config.resyncEvery === 0)) {
      // Decided from values every member of this all-reduce shares (flag sum, step), so all of
      // them enter the same resync.
      this.outOfSync = !(await this.resync(res.sum[d + 1]))
    }
    const gbar = res ? res.sum.subarray(0, d) : g.grad
    const total = res ? res.sum[d] : g.samples
    const inv = res ? 1 / total : 1
    // The global batch is what this step's all-reduce summed, identical on every member, so the
    // replicas stay bit-identical while a departure or join rescales the lr (docs/algorithms.md "SSGD under churn").
    const lr = scaledLrAt(config.schedule, config.lr, config.lrScaling, total, this.t, config.totalSteps)
    const beta = config.momentum
    const wd = config.weightDecay
    // After the resync: it replaces x and m.
    const { x, m } = this
    for (let i = 0; i < d; i++) {
      m[i] = beta * m[i] + gbar[i] * inv + wd * x[i]
      x[i] -= lr * m[i]
    }
    // Counters move with x and m, before any await: the state responder never sees a new x
    // with an old step (a joiner copying that triple would be one step off).
    this.step++
    this.t++
    mesh.clock.advance(this.t)
    await ctx.compute.writeParams(x)
    return {
      // This peer's samples, as every algorithm reports: the session's samples/s and the
      // simulator's swarm total add them up over peers (the group total would count n times).
      step: this.step, globalStep: this.t, loss: g.loss, samples: g.samples, lr,
      communicated: res !== null, contributors: res?.members ?? 1,
    }
  }
}
