import type { VectorArena } from '../math/arena'
import { mixInto, sqDist } from '../math/vector'
import type { PeerId } from '../transport'
import { ClipGate, clipScale, dist, norm, RunningBound } from './clip'

/**
 * ClippedGossip: self-centred clipping of each neighbour's difference (He, Karimireddy & Jaggi,
 * "Byzantine-robust decentralized learning via ClippedGossip", 2022, arXiv 2202.01545), the
 * robust mix of the gossip family (docs/algorithms.md "Robust aggregation"):
 *
 *   x_i ← x_i + Σ_j w_ij · clip(x_j − x_i, τ_i),    clip(z, τ) = z · min(1, τ/‖z‖)
 *
 * A neighbour moves x_i by at most w_ij·τ_i, whatever it sends; all neighbours together by at
 * most (1 − w_ii)·τ_i. Since clip only scales each difference by s_j = min(1, τ/‖x_j − x_i‖),
 * the update is a plain mix with weights w_ii + Σ_j w_ij(1 − s_j) on x_i and w_ij·s_j on x_j,
 * which is how it runs: one fused mix (the arena's SIMD kernels) plus one distance per neighbour.
 *
 * Radius τ_i: the paper's analysis takes τ_i from the spread of the honest neighbours, which a
 * peer cannot know; in practice the neighbours presumed hostile are clipped to the distance of
 * the others. Here: sort the received neighbours by distance, farthest first, and take into the
 * clipped set every one whose weight still fits in HOSTILE_WEIGHT_BUDGET of the received
 * neighbours' weight; τ is the distance of the nearest one left out (so at least one neighbour,
 * the one at distance τ, is never clipped, and neighbours tied with it are not clipped either).
 * On a ring that is the nearer neighbour's distance; on a clique of 8 the 4th-farthest's. Not a
 * multiple of it: an attacker's ring neighbour is pushed away by w·τ and pulled back by w·r_near
 * per step, so with τ = 2·r_near it diverges (it did on the ring of shared/algorithms/robust.test.ts
 * with the factor raised to 2).
 *
 * Then τ is capped by RADIUS_CAP_FACTOR × the median of this peer's last radii (RunningBound),
 * which covers what the quantile cannot: a step with a single neighbour (one-peer exponential
 * graph, a neighbour folded out) and hostile neighbours holding more than the budget. Until
 * there is a history the cap is ‖x_i‖ (a neighbour may not pull farther than our own norm).
 */

/** Share of the received neighbours' weight that the radius rule presumes may be hostile (at most). */
export const HOSTILE_WEIGHT_BUDGET = 0.5

/** The radius is capped at this multiple of the median of the last radii. */
export const RADIUS_CAP_FACTOR = 4

/**
 * A neighbour counts towards the sanity gate only when clipped by more than this factor and
 * farther from us than our own model's norm. The quantile radius clips one honest neighbour of a
 * ring in every round, and on a heterogeneous ring peers settle in pairs whose far sides are
 * clipped by up to ~12× (the robust in-memory tests); the norm condition is what separates a
 * scaled or sign-flipped model (‖x_j − x_i‖ = |k − 1|·‖x_i‖) from them.
 */
export const GOSSIP_GATE_RATIO = 4

/**
 * The quantile radius of a round: the distance of the nearest neighbour outside the clipped set,
 * which holds the farthest neighbours whose weights sum to at most `budget` of the total.
 * Infinity without neighbours.
 */
export function adaptiveRadius(dists: readonly number[], ws: readonly number[], budget = HOSTILE_WEIGHT_BUDGET): number {
  const k = dists.length
  if (k === 0) return Infinity
  let total = 0
  for (const w of ws) total += w
  const allowed = budget * total * (1 + 1e-9)
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => dists[b] - dists[a])
  let cum = 0
  for (const i of order) {
    if (cum + ws[i] > allowed) return dists[i]
    cum += ws[i]
  }
  return dists[order[k - 1]]
}

export interface ClippedMix {
  /** ‖v_j − own‖ per neighbour. */
  readonly dists: number[]
  /** min(1, τ/‖v_j − own‖) per neighbour: 1 when not clipped. */
  readonly scales: number[]
}

/**
 * out = own + Σ_j ws_j · clip(vs_j − own, τ), with wSelf + Σ ws = 1 (the rest of the row's weight,
 * including folded neighbours, is on self). `out` may alias `own`. `dists` may be passed when the
 * caller already has them. Pure: allocates only the per-neighbour arrays.
 */
export function clippedMix(
  out: Float32Array, own: Float32Array, wSelf: number, ws: readonly number[], vs: readonly Float32Array[], tau: number,
  arena?: VectorArena, dists?: readonly number[],
): ClippedMix {
  const k = vs.length
  const ds = dists ? [...dists] : vs.map((v) => Math.sqrt(arena ? arena.sqDist(own, v) : sqDist(own, v)))
  const scales = ds.map((d) => clipScale(d, tau))
  const weights = [wSelf]
  const vecs = [own]
  for (let j = 0; j < k; j++) {
    weights[0] += ws[j] * (1 - scales[j])
    if (scales[j] > 0) {
      weights.push(ws[j] * scales[j])
      vecs.push(vs[j])
    }
  }
  if (arena) arena.mix(out, weights, vecs)
  else mixInto(out, weights, vecs)
  return { dists: ds, scales }
}

/** What one robust round did: the radius and, per neighbour, its distance and clip scale. */
export interface ClipRound extends ClippedMix {
  readonly tau: number
  readonly peers: readonly PeerId[]
}

/** A graceful leaver's model to fold in: x ← x + share · (x_L − x) (shared/algorithms/common.ts). */
export interface Handover {
  readonly from: PeerId
  readonly x: Float32Array
  readonly share: number
}

/**
 * One peer's ClippedGossip state: the radius history (the cap) and the sanity gate. `report` is
 * called with the evidence when a neighbour was clipped by more than GOSSIP_GATE_RATIO in
 * GATE_ROUNDS consecutive rounds (the gossip kernel passes mesh.reportSuspect).
 */
export class ClippedGossip {
  readonly history = new RunningBound({ window: 32, minSamples: 4, factor: RADIUS_CAP_FACTOR })
  readonly gate = new ClipGate('gossip contribution', GOSSIP_GATE_RATIO)

  constructor(private readonly report: (peer: PeerId, reason: string) => void = () => {}) {}

  /** The cap alone: RADIUS_CAP_FACTOR × median of the last radii, or ‖own‖ before there are any. */
  cap(own: Float32Array): number {
    if (this.history.size >= this.history.minSamples) return this.history.bound()
    const n = norm(own)
    return n > 0 ? n : Infinity
  }

  /** This round's radius: min(quantile radius, cap); recorded in the history. */
  radius(dists: readonly number[], ws: readonly number[], own: Float32Array): number {
    const tau = Math.min(adaptiveRadius(dists, ws), this.cap(own))
    this.history.observe(tau)
    return tau
  }

  /**
   * Feeds the sanity gate with a round's distances; reports a neighbour clipped by more than
   * GOSSIP_GATE_RATIO, and farther than ‖own‖, in GATE_ROUNDS consecutive rounds.
   */
  judge(peers: readonly PeerId[], dists: readonly number[], tau: number, own: Float32Array): void {
    let floor = -1
    for (let j = 0; j < peers.length; j++) {
      // ‖own‖ only when someone is clipped that far (most rounds nobody is).
      if (floor < 0 && dists[j] > GOSSIP_GATE_RATIO * tau) floor = norm(own)
      const why = this.gate.observe(peers[j], dists[j], tau, Math.max(floor, 0))
      if (why) this.report(peers[j], why)
    }
  }

  /**
   * The robust mix of one round: out = own + Σ_j ws_j · clip(vs_j − own, τ) with τ from
   * radius(), then the gate. `out` may alias `own`.
   */
  combine(
    out: Float32Array, own: Float32Array, wSelf: number, peers: readonly PeerId[], ws: readonly number[],
    vs: readonly Float32Array[], arena?: VectorArena,
  ): ClipRound {
    const dists = vs.map((v) => Math.sqrt(arena ? arena.sqDist(own, v) : sqDist(own, v)))
    const tau = this.radius(dists, ws, own)
    const mixed = clippedMix(out, own, wSelf, ws, vs, tau, arena, dists)
    this.judge(peers, dists, tau, own)
    return { ...mixed, tau, peers }
  }

  /**
   * Graceful-leave hand-overs, clipped like a neighbour: x ← x + share · clip(x_L − x, cap). A
   * leaver is gone, so it is not judged. Returns whether anything was folded.
   */
  foldHandovers(x: Float32Array, hs: readonly Handover[]): boolean {
    for (const h of hs) {
      const s = h.share * clipScale(dist(h.x, x), this.cap(x))
      for (let i = 0; i < x.length; i++) x[i] += s * (h.x[i] - x[i])
    }
    return hs.length > 0
  }
}
