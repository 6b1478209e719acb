import { concat } from '../math/vector'
import { clipScale, dist } from '../robust/clip'
import { adaptiveRadius, type ClippedGossip } from '../robust/clipped-gossip'
import { foldMissing, type MixingWeights } from '../topology'
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
 *
 * Robust (`robust: 'on'`, docs/algorithms.md "Robust aggregation"): with h = x − γg our own
 * stepped model, Σ_j w_j (x − h_j)/γ = (1 − w_ii) g − Σ_j w_j (h_j − h)/γ, so
 *   g̃ = g − Σ_j w_j (h_j − h)/γ
 * exactly, and ClippedGossip clips the differences h_j − h: g̃ = g − Σ_j w_j clip(h_j − h, τ)/γ.
 * They are differences of stepped models, as in DmSGD's (ATC) robust mix, so the clipping is
 * inactive where honest neighbours agree, and the correction term keeps its fixed point (the
 * bias removal is the same as without clipping). A hostile neighbour adds at most w_j τ/γ to g̃
 * per step, i.e. moves x by at most w_j τ per step before momentum (τ/(1 − β) summed over time).
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
  const { gt, recvX } = peer.robust
    ? robustModifiedGradient(peer.robust, x, g, w, res, lr, split)
    : modifiedGradient(x, g, w, res, lr, split)
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

/**
 * modifiedGradient with ClippedGossip (see the header): g̃ = g − Σ_j w_j clip(h_j − h, τ)/γ with
 * h = x − γg and h_j = x_j − γg_j (sent as is, or from a split payload). While γ = 0 (a split
 * step at the very start of warmup) x does not move and g̃ = g + Σ_j w_j clip(g_j − g, τ_g), the
 * gradients clipped to their own quantile radius (no history: it is a different quantity).
 */
function robustModifiedGradient(
  robust: ClippedGossip, x: Float32Array, g: Float32Array, w: MixingWeights, res: ExchangeResult, lr: number, split: boolean,
): { gt: Float32Array; recvX: Map<PeerId, Float32Array> } {
  const d = x.length
  const folded = foldMissing(w, res.missing)
  const recvX = new Map<PeerId, Float32Array>()
  // γ = 0 after warmup (a schedule that ends at 0): x does not move and g̃ is not used.
  if (!split && !(lr > 0)) return { gt: new Float32Array(g), recvX }
  const peers: PeerId[] = []
  const ws: number[] = []
  const hs: Float32Array[] = []
  const gradOnly = split && !(lr > 0)
  for (const [p, wp] of folded.in) {
    const v = res.received.get(p)
    if (!v) continue
    let h = v
    if (split) {
      const xj = v.subarray(0, d)
      const gj = v.subarray(d)
      recvX.set(p, xj)
      h = gradOnly ? gj : stepped(xj, gj, lr)
    }
    peers.push(p)
    ws.push(wp)
    hs.push(h)
  }
  const own = gradOnly ? g : stepped(x, g, lr)
  const dists = hs.map((h) => dist(h, own))
  const tau = gradOnly ? adaptiveRadius(dists, ws) : robust.radius(dists, ws, own)
  if (!gradOnly) robust.judge(peers, dists, tau, own)
  const gt = new Float32Array(g)
  for (let j = 0; j < hs.length; j++) {
    const h = hs[j]
    // g̃ −= w_j s_j (h_j − h)/γ, or += w_j s_j (g_j − g) while γ = 0.
    const c = gradOnly ? ws[j] * clipScale(dists[j], tau) : -(ws[j] * clipScale(dists[j], tau)) / lr
    if (c === 0) continue
    for (let i = 0; i < d; i++) gt[i] += c * (h[i] - own[i])
  }
  return { gt, recvX }
}
