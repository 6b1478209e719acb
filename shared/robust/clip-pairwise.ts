import type { PeerId } from '../transport'
import { ClipGate, clipScale, dist, norm } from './clip'

/**
 * ClippedGossip's self-centred clipping (He, Karimireddy & Jaggi 2022, arXiv 2202.01545) on
 * AD-PSGD's pairwise exchange (docs/algorithms.md "Robust aggregation"): instead of
 * x_A ← x_A + (s_B − s_A)/2 a peer applies
 *
 *   x_A ← x_A + clip(s_B − s_A, τ_B)/2
 *
 * so a hostile partner moves an honest one by at most τ_B/2 per exchange. With one partner per
 * exchange there is no neighbourhood to take a quantile over; the pairwise counterpart of the
 * gossip rule (a neighbour is clipped to the distance of the others) is a leave-one-out radius:
 * τ_B = PAIRWISE_RADIUS_FACTOR × the median distance of this peer's recent exchanges with
 * partners other than B (each recorded as min(‖s_B − s_A‖, τ)), and ‖s_A‖ before
 * PAIRWISE_MIN_SAMPLES such exchanges. A partner's own distances never set its radius, so a
 * hostile partner cannot talk it up. The factor must stay below 2: a peer with one honest and
 * one hostile partner (a ring) is pushed τ/2 away and pulled halfway back, which contracts its
 * distance to the honest one only when τ/2 is less than that distance (with the factor at 3 the
 * attacked ring of shared/algorithms/robust.test.ts diverged).
 *
 * Each side clips with its own history, so an honest pair whose radii differ can move its sum a
 * little when one side clips and the other does not; with no clipping the exchange is unchanged
 * (bit-identical midpoints included).
 */

/**
 * The radius is this multiple of the median recent distance to the other partners (< 2, see
 * above). 1, as in the gossip rule. In shared/algorithms/robust.test.ts's attacked ring, 1.5 left
 * the honest peers 8× farther from the optimum (‖x − x*‖² 9.9 against 1.2); it costs a clean run
 * less (0.18 against 0.49 after 300 steps; plain AD-PSGD 0.10).
 */
export const PAIRWISE_RADIUS_FACTOR = 1

/** Exchanges with other partners seen before their median is used (before: ‖own‖). */
export const PAIRWISE_MIN_SAMPLES = 4

/** Exchanges remembered. */
const PAIRWISE_WINDOW = 32

/**
 * out = cur + share · clip(theirs − mine, τ): a pairwise move applied to the current model `cur`
 * (which may have moved since the snapshot `mine`; it may alias `out` or `mine`). Returns
 * ‖theirs − mine‖ and the clip scale.
 */
export function clippedPairwiseMove(
  out: Float32Array, cur: Float32Array, mine: Float32Array, theirs: Float32Array, share: number, tau: number,
): { dist: number; scale: number } {
  const r = dist(theirs, mine)
  const scale = clipScale(r, tau)
  const s = share * scale
  for (let k = 0; k < out.length; k++) out[k] = cur[k] + s * (theirs[k] - mine[k])
  return { dist: r, scale }
}

/** One peer's pairwise-clipping state: the recent exchange distances by partner, and the sanity gate. */
export class PairwiseClip {
  private readonly recent: { partner: PeerId; r: number }[] = []
  private next = 0
  readonly gate = new ClipGate('pairwise exchange', 1)

  constructor(private readonly report: (peer: PeerId, reason: string) => void = () => {}) {}

  /** The radius for an exchange with `partner` from snapshot `mine`. Does not record anything. */
  radius(partner: PeerId, mine: Float32Array): number {
    const others: number[] = []
    for (const e of this.recent) if (e.partner !== partner) others.push(e.r)
    if (others.length >= PAIRWISE_MIN_SAMPLES) {
      others.sort((a, b) => a - b)
      const k = others.length
      const med = k % 2 ? others[(k - 1) / 2] : (others[k / 2 - 1] + others[k / 2]) / 2
      return PAIRWISE_RADIUS_FACTOR * med
    }
    const n = norm(mine)
    return n > 0 ? n : Infinity
  }

  /**
   * Judges an exchange with `partner` whose distance is `r` under radius `tau` from snapshot
   * `mine`: records min(r, τ) and feeds the gate, reporting a partner clipped (and farther than
   * ‖mine‖, as in the gossip gate) in GATE_ROUNDS exchanges with it in a row.
   */
  judge(partner: PeerId, r: number, tau: number, mine?: Float32Array): void {
    const v = Math.min(r, tau)
    if (Number.isFinite(v) && v > 0) {
      if (this.recent.length < PAIRWISE_WINDOW) this.recent.push({ partner, r: v })
      else {
        this.recent[this.next] = { partner, r: v }
        this.next = (this.next + 1) % PAIRWISE_WINDOW
      }
    }
    const why = this.gate.observe(partner, r, tau, r > tau && mine ? norm(mine) : 0)
    if (why) this.report(partner, why)
  }
}
