import type { AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import { isValidVector } from '../math/vector'
import { scaledLrAt } from '../schedule'
import { allReduceWithRetry, requestState, ringNeighbours, startStateResponder, type PeerState } from './common'
import { SSGD_COLLECTIVE } from './message-kinds'

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

export const ssgd: AlgorithmFactory = async (ctx) => {
  const { compute, config, mesh } = ctx
  const d = compute.paramCount
  let x: Float32Array = await compute.readParams()
  let m: Float32Array = new Float32Array(d)
  let step = 0
  let t = 0
  let ready = false
  /** This peer's x, m may differ from the group's (it fell back, or a resync failed). */
  let outOfSync = false
  /**
   * A step whose all-reduce failed while a ring neighbour was behind it: the gradient and
   * the chunks already consumed are kept, and the next step() call retries the same round with
   * them instead of stepping on alone. Stepping on would put this peer a step ahead of the
   * neighbour that is about to join the round, and the two would chase each other; holding
   * inside one call alone is not enough when deadlines expire under CPU load.
   */
  let held: { grad: Float32Array; loss: number; samples: number; received: Map<string, Float32Array>; calls: number } | null = null
  const stopResponder = startStateResponder(ctx, async () =>
    ready ? { params: new Float32Array(x), opt: [new Float32Array(m)], step, globalStep: t, extra: {} } : null)

  /** Takes a group member's exact x, m and step (they are the same on every member). */
  const adopt = async (s: PeerState): Promise<void> => {
    x = s.params
    m = s.opt[0]?.length === d ? s.opt[0] : new Float32Array(d)
    // A held gradient belongs to the old x and step.
    held = null
    step = s.step
    t = s.globalStep
    await compute.writeParams(x)
    mesh.clock.observe(t)
  }

  // Exact state from a ready ring neighbour (all members hold the same state; asking only the
  // neighbours keeps a joiner to the two links the all-reduce uses).
  const states: PeerState[] = await requestState(ctx, ringNeighbours(ctx))
  if (states.length > 0) await adopt(states[0])
  ready = true

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
  const neighbourSteps = async (): Promise<PeerState[]> =>
    (await requestState(ctx, ringNeighbours(ctx))).filter((s) => isValidVector(s.params, d))
  /** Averages x and m over the group (same step as the gradient all-reduce); true on success. */
  const resync = async (outOfSyncPeers: number): Promise<boolean> => {
    const xs = x
    const ms = m
    const res = await allReduceWithRetry(ctx, SSGD_COLLECTIVE.resync, step, () => {
      const v = new Float32Array(2 * d)
      v.set(xs, 0)
      v.set(ms, d)
      return v
    }, { attempts: RESYNC_ATTEMPTS })
    if (!res || !isValidVector(res.sum, 2 * d)) {
      ctx.log('ssgd/resync-failed', { step })
      return false
    }
    const inv = 1 / res.members
    x = res.sum.slice(0, d).map((v) => v * inv)
    m = res.sum.slice(d).map((v) => v * inv)
    ctx.log('ssgd/resync', { step, members: res.members, outOfSyncPeers })
    return true
  }

  const inst: AlgorithmInstance = {
    name: 'ssgd',
    async step(): Promise<StepReport> {
      let grad: Float32Array
      let loss: number
      let samples: number
      let res: { sum: Float32Array; members: number } | null
      /** The last look at the ring neighbours found one behind this step and none ahead. */
      let neighbourBehind = false
      let heldCalls = 0
      for (let pass = 0; ; pass++) {
        t = Math.max(t, step)
        let received = new Map<string, Float32Array>()
        if (held) {
          ;({ grad, loss, samples, received } = held)
          heldCalls = held.calls
          held = null
        } else {
          ;({ grad, loss, samples } = await compute.gradient())
        }
        // Sample-weighted sum: [Σ b_i g_i, Σ b_i, #out of sync] in one vector, so ḡ = Σ b_i g_i / Σ b_i.
        const flag = outOfSync ? 1 : 0
        const g = grad
        const b = samples
        const build = () => {
          const v = new Float32Array(d + 2)
          for (let i = 0; i < d; i++) v[i] = g[i] * b
          v[d] = b
          v[d + 1] = flag
          return v
        }
        // Shared by the first try and the holds: a held retry of the same round reuses the chunks
        // already consumed (the neighbours' re-sent copies are duplicates the mesh drops).
        res = await allReduceWithRetry(ctx, SSGD_COLLECTIVE.gradient, step, build, { received })
        let caughtUp = false
        neighbourBehind = false
        for (let hold = 0; !res && hold < MAX_HOLDS && !ctx.signal.aborted; hold++) {
          const near = await neighbourSteps()
          const ahead = near.filter((s) => s.step > step)
          neighbourBehind = ahead.length === 0 && near.some((s) => s.step < step)
          if (ahead.length > 0 && pass < MAX_CATCH_UPS) {
            const s = ahead.reduce((x1, x2) => (x2.step > x1.step ? x2 : x1))
            ctx.log('ssgd/catch-up', { from: step, to: s.step })
            await adopt(s)
            outOfSync = false
            caughtUp = true
            heldCalls = 0
            break
          }
          if (!near.some((s) => s.step <= step)) break
          ctx.log('ssgd/hold', { step, hold })
          res = await allReduceWithRetry(ctx, SSGD_COLLECTIVE.gradient, step, build, { received, attempts: HOLD_ATTEMPTS })
        }
        if (!caughtUp) {
          if (!res && neighbourBehind && heldCalls + 1 < MAX_HELD_CALLS && !ctx.signal.aborted) {
            held = { grad, loss, samples, received, calls: heldCalls + 1 }
            ctx.log('ssgd/held', { step, calls: held.calls })
            // Nothing applied: same step, no samples yet (they count when the held step is taken).
            return {
              step, globalStep: t, loss, samples: 0, communicated: false, contributors: 1,
              lr: scaledLrAt(config.schedule, config.lr, config.lrScaling, samples, t, config.totalSteps),
            }
          }
          break
        }
      }
      if (!res) {
        ctx.log('ssgd/fallback', { step })
        outOfSync = true
      } else if (res.sum[d + 1] >= FLAG_THRESHOLD || (config.resyncEvery > 0 && step > 0 && step % config.resyncEvery === 0)) {
        // Decided from values every member of this all-reduce shares (flag sum, step), so all of
        // them enter the same resync.
        outOfSync = !(await resync(res.sum[d + 1]))
      }
      const gbar = res ? res.sum.subarray(0, d) : grad
      const total = res ? res.sum[d] : samples
      const inv = res ? 1 / total : 1
      // The global batch is what this step's all-reduce summed, identical on every member, so the
      // replicas stay bit-identical while a departure or join rescales the lr (docs/algorithms.md "SSGD under churn").
      const lr = scaledLrAt(config.schedule, config.lr, config.lrScaling, total, t, config.totalSteps)
      const beta = config.momentum
      const wd = config.weightDecay
      for (let i = 0; i < d; i++) {
        m[i] = beta * m[i] + gbar[i] * inv + wd * x[i]
        x[i] -= lr * m[i]
      }
      // Counters move with x and m, before any await: the state responder never sees a new x
      // with an old step (a joiner copying that triple would be one step off).
      step++
      t++
      mesh.clock.advance(t)
      await compute.writeParams(x)
      return {
        // This peer's samples, as every algorithm reports: the session's samples/s and the
        // simulator's swarm total add them up over peers (the group total would count n times).
        step, globalStep: t, loss, samples, lr,
        communicated: res !== null, contributors: res?.members ?? 1,
      }
    },
    evalParams: async () => new Float32Array(x),
    async leave() {
      stopResponder()
    },
    dispose() {
      stopResponder()
    },
  }
  return inst
}
