import type { PeerId } from '../transport'

/**
 * Pieces every robust combiner shares (docs/algorithms.md "Robust aggregation"): the clipping
 * scale, a running robust bound (a multiple of the median of recent values) and the sanity gate
 * that reports a peer whose contribution is clipped round after round.
 */

/**
 * The factor clip(z, τ) = z · min(1, τ/‖z‖) multiplies z by, from ‖z‖ and τ: 1 within the radius
 * (ties included: ‖z‖ = τ is not clipped), τ/‖z‖ beyond it, 0 for a non-finite norm.
 */
export function clipScale(norm: number, tau: number): number {
  if (!Number.isFinite(norm)) return 0
  if (norm <= tau) return 1
  return tau / norm
}

/** ‖a − b‖, accumulated in float64. */
export function dist(a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i]
    s += d * d
  }
  return Math.sqrt(s)
}

/**
 * ‖a − b‖ and ‖b‖ in one pass, accumulated in float64: the pull check needs both, and the pass
 * over the model is its whole cost.
 */
export function distAndNorm(a: Float32Array, b: Float32Array): { dist: number; norm: number } {
  let s = 0
  let t = 0
  for (let i = 0; i < a.length; i++) {
    const y = b[i]
    const d = a[i] - y
    s += d * d
    t += y * y
  }
  return { dist: Math.sqrt(s), norm: Math.sqrt(t) }
}

/**
 * ‖a‖, accumulated in float64. Finite exactly when every element is: a sum of squares of finite
 * float32 values (each below 1.2e77) cannot overflow float64, so callers may use it as the
 * finiteness check too.
 */
export function norm(a: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * a[i]
  return Math.sqrt(s)
}

export interface RunningBoundOptions {
  /** Values kept (the newest). */
  window?: number
  /** Values needed before the median is trusted; below it bound() returns its fallback. */
  minSamples?: number
  /** The bound is this multiple of the median. */
  factor?: number
}

/**
 * `factor` × the median of the last `window` observed values, once `minSamples` are in. Exact
 * zeros are not recorded (identical models at initialisation say nothing about the scale, and a
 * zero median would clip everything to nothing). Callers record values that were already bounded
 * (the radius used, a clipped norm), so a sustained attack can raise the bound by at most
 * `factor` per half window instead of at once. O(window) per bound().
 */
export class RunningBound {
  readonly window: number
  readonly minSamples: number
  readonly factor: number
  private readonly values: number[] = []
  private next = 0
  private readonly sorted: number[] = []

  constructor(opts: RunningBoundOptions = {}) {
    this.window = opts.window ?? 32
    this.minSamples = opts.minSamples ?? 4
    this.factor = opts.factor ?? 3
  }

  get size(): number {
    return this.values.length
  }

  observe(v: number): void {
    if (!Number.isFinite(v) || v <= 0) return
    if (this.values.length < this.window) this.values.push(v)
    else {
      this.values[this.next] = v
      this.next = (this.next + 1) % this.window
    }
  }

  /** Median of the kept values; undefined when none. */
  median(): number | undefined {
    const n = this.values.length
    if (n === 0) return undefined
    const s = this.sorted
    s.length = 0
    for (const v of this.values) s.push(v)
    s.sort((a, b) => a - b)
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
  }

  /** factor × median once minSamples values are in, else `fallback`. */
  bound(fallback = Infinity): number {
    if (this.values.length < this.minSamples) return fallback
    return this.factor * this.median()!
  }
}

/** Rounds a clipped neighbour may go on in a row before it is reported (and again every as many). */
export const GATE_ROUNDS = 10

/**
 * Sanity gate: counts, per peer, the consecutive rounds in which its contribution was clipped by
 * more than `ratio` (‖Δ‖ > ratio·τ) and was farther than `floor` (the gossip family passes its
 * own model's norm: an honest neighbour in the same run is nearer than that, a scaled or
 * sign-flipped model is not). At every `rounds`-th such round in a row it returns the
 * evidence to report (mesh.reportSuspect), like the missed-deadline count of the neighbour
 * exchange: the server lets suspicions expire, so a peer that keeps it up keeps being reported.
 * A round where the peer's contribution was within ratio·τ resets its count; a round without a
 * contribution from it leaves the count as it is.
 */
export class ClipGate {
  private readonly runs = new Map<PeerId, number>()

  constructor(readonly what: string, readonly ratio = 1, readonly rounds = GATE_ROUNDS) {}

  /** The reason to report `peer` with this round, or null. */
  observe(peer: PeerId, norm: number, tau: number, floor = 0): string | null {
    if (!(norm > this.ratio * tau && norm > floor)) {
      this.runs.delete(peer)
      return null
    }
    const k = (this.runs.get(peer) ?? 0) + 1
    this.runs.set(peer, k)
    if (k % this.rounds !== 0) return null
    return `${this.what} clipped in ${k} consecutive rounds (‖Δ‖ = ${fmt(norm)} > τ = ${fmt(tau)})`
  }

  /** Consecutive clipped rounds of `peer` so far. */
  run(peer: PeerId): number {
    return this.runs.get(peer) ?? 0
  }

  forget(peer: PeerId): void {
    this.runs.delete(peer)
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(3) : String(v)
}
