import type { AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import { scaledLrAt } from '../schedule'
import { allReduceWithRetry, others, requestState, startStateResponder, type PeerState } from './common'

/**
 * SSGD (§2): gradients all-reduced over the whole roster every step (ring all-reduce, sample
 * weighted), then heavy-ball momentum with coupled weight decay, identical on every peer:
 * m = βm + ḡ + λx, x = x − γm. A joiner receives the exact x, m and step (§2.4). With
 * `lrScaling: linear`, γ follows the global batch of each step (Goyal et al., §2.1).
 */
export const ssgd: AlgorithmFactory = async (ctx) => {
  const { compute, config, mesh } = ctx
  const d = compute.paramCount
  let x: Float32Array = await compute.readParams()
  let m: Float32Array = new Float32Array(d)
  let step = 0
  let t = 0
  let ready = false
  const stopResponder = startStateResponder(ctx, async () =>
    ready ? { params: new Float32Array(x), opt: [new Float32Array(m)], step, globalStep: t, extra: {} } : null)

  // Exact state from the first ready peer in roster order (all members hold the same state).
  const states: PeerState[] = await requestState(ctx, others(ctx))
  if (states.length > 0) {
    const s = states[0]
    x = s.params
    if (s.opt[0]?.length === d) m = s.opt[0]
    step = s.step
    t = s.globalStep
    await compute.writeParams(x)
    mesh.clock.observe(t)
  }
  ready = true

  const inst: AlgorithmInstance = {
    name: 'ssgd',
    async step(): Promise<StepReport> {
      t = Math.max(t, step)
      const { grad, loss, samples } = await compute.gradient()
      // Sample-weighted sum: [Σ b_i g_i, Σ b_i] in one vector, so ḡ = Σ b_i g_i / Σ b_i.
      const res = await allReduceWithRetry(ctx, 'ssgd', step, () => {
        const v = new Float32Array(d + 1)
        for (let i = 0; i < d; i++) v[i] = grad[i] * samples
        v[d] = samples
        return v
      })
      const gbar = res ? res.sum.subarray(0, d) : grad
      const total = res ? res.sum[d] : samples
      const inv = res ? 1 / total : 1
      // The global batch is what this step's all-reduce summed, identical on every member, so the
      // replicas stay bit-identical while a departure or join rescales the lr (§2.4).
      const lr = scaledLrAt(config.schedule, config.lr, config.lrScaling, total, t, config.totalSteps)
      const beta = config.momentum
      const wd = config.weightDecay
      for (let i = 0; i < d; i++) {
        m[i] = beta * m[i] + gbar[i] * inv + wd * x[i]
        x[i] -= lr * m[i]
      }
      await compute.writeParams(x)
      step++
      t++
      mesh.clock.advance(t)
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
