import { concat } from '../math/vector'
import type { MixingWeights } from '../topology'
import type { PeerId } from '../transport'
import type { ExchangeResult } from './common'
import { gossipAlgorithm, type GossipPeer, type GossipRule } from './gossip-kernel'
import type { AlgorithmFactory, StepReport } from './types'

/**
 * DecentLaM (Yuan et al., ICCV 2021, arXiv 2104.11981): heavy-ball momentum on a modified
 * gradient that carries the gossip correction, which removes the bias momentum adds on non-iid
 * data:
 *   h_j = x_j − γ g_j (what neighbour j sends),  g̃ = w_ii g + Σ_j w_j [(x − h_j)/γ],
 *   m = βm + g̃,  x ← x − γm
 * with g the gradient plus weight decay. Heavy-ball on the correction (I − W)x/γ is only stable
 * when W has a real spectrum, so on the directed exponential graphs it mixes with the symmetric
 * (W + Wᵀ)/2 (docs/algorithms.md "DecentLaM on directed graphs").
 */
export const DECENTLAM: GossipRule = {
  vectors: 0,
  symmetric: true,
  make: (peer) => () => decentlamStep(peer),
}

export const decentlam: AlgorithmFactory = gossipAlgorithm('decentlam', () => DECENTLAM)

async function decentlamStep(peer: GossipPeer): Promise<StepReport> {
  const { ctx, d, x, m } = peer
  const { lr, beta, wd, nb, w } = await peer.begin()
  const gr = await ctx.compute.gradient()
  const g = new Float32Array(d)
  for (let i = 0; i < d; i++) g[i] = gr.grad[i] + wd * x[i]
  // During warmup γ starts at 0, so (x − h_j)/γ would be 0/0: send [x, g] instead and use the
  // algebraic form (x − x_j)/γ + g_j per neighbour while γ > 0, and skip the gossip term
  // entirely while γ = 0 (x does not move then anyway).
  const split = peer.t < ctx.config.schedule.warmupSteps
  const payload = split ? concat([x, g]) : stepped(x, g, lr)
  const res = await peer.ex.exchange(peer.kind, peer.step, payload, nb, {
    length: split ? 2 * d : d, meta: { split },
    // Around the end of warmup neighbours may disagree on `split` for a step: the other form is
    // folded like a missing vector but is not evidence of a bad peer.
    benignLengths: [d, 2 * d],
  })
  const { gt, recvX } = modifiedGradient(x, g, w, res, lr, split)
  if (lr > 0 || split) {
    for (let i = 0; i < d; i++) {
      m[i] = beta * m[i] + gt[i]
      x[i] -= lr * m[i]
    }
  }
  const info = { folded: res.missing.length, contributors: res.received.size }
  return peer.finish(res, info, gr.loss, gr.samples, lr, split ? recvX : res.received)
}

/** h = x − γg: the model after a plain gradient step, which is what DecentLaM gossips. */
function stepped(x: Float32Array, g: Float32Array, lr: number): Float32Array {
  const h = new Float32Array(x.length)
  for (let i = 0; i < x.length; i++) h[i] = x[i] - lr * g[i]
  return h
}

/**
 * g̃ = w_self·g + Σ_j w_j·term_j, a missing neighbour's weight going to the self term. With a
 * split payload [x_j, g_j] also returns the neighbours' models x_j (the consensus proxy's input).
 */
function modifiedGradient(
  x: Float32Array, g: Float32Array, w: MixingWeights, res: ExchangeResult, lr: number, split: boolean,
): { gt: Float32Array; recvX: Map<PeerId, Float32Array> } {
  const d = x.length
  const folded = new Map(w.in)
  let wSelf = w.self
  for (const p of res.missing) {
    wSelf += folded.get(p) ?? 0
    folded.delete(p)
  }
  const gt = new Float32Array(d)
  for (let i = 0; i < d; i++) gt[i] = wSelf * g[i]
  const recvX = new Map<PeerId, Float32Array>()
  for (const [p, wp] of folded) {
    const v = res.received.get(p)!
    if (split) {
      const xj = v.subarray(0, d)
      const gj = v.subarray(d)
      recvX.set(p, xj)
      for (let i = 0; i < d; i++) gt[i] += wp * ((lr > 0 ? (x[i] - xj[i]) / lr : 0) + gj[i])
    } else {
      for (let i = 0; i < d; i++) gt[i] += wp * ((x[i] - v[i]) / lr)
    }
  }
  return { gt, recvX }
}
