import type { PeerId } from '../transport'
import { ClipGate, clipScale, distAndNorm, GATE_ROUNDS, norm, RunningBound } from './clip'

/**
 * Robust aggregation for the parameter-server algorithms (asgd.ts, od-sgd.ts; docs/algorithms.md
 * "Robust aggregation"): the server-side form of ClippedGossip's clipping (He, Karimireddy &
 * Jaggi 2022, arXiv 2202.01545). ASGD applies each push on its own, so there is no set of pushes
 * to centre on: a push is norm-clipped (centred clipping of Karimireddy, He & Jaggi, ICML 2021,
 * arXiv 2012.10333, with the centre at 0) to a radius taken from the history of push norms:
 *
 * - Server: each pushed gradient is clipped to τ = PUSH_CLIP_FACTOR × the median norm of the last
 *   pushes (each recorded clipped, so the bound moves by at most that factor per half window),
 *   g ← g · min(1, τ/‖g‖); a worker whose pushes are clipped GATE_ROUNDS times in a row is
 *   reported. Pushes are rate-limited per worker in logical time (PushShareLimiter).
 * - Worker: pulled weights W must lie within max(PULL_OWN_RATIO·‖Ŵ‖, PULL_FACTOR × median recent
 *   pull distance) of its own latest copy Ŵ; beyond that they are rejected (the worker takes its
 *   local step instead) and after GATE_ROUNDS rejections in a row the server is reported.
 */

/** Pushed gradients are clipped to this multiple of the median recent push norm. */
export const PUSH_CLIP_FACTOR = 3

/** Pushes seen before the bound applies (the server's own gradients count). */
export const PUSH_MIN_SAMPLES = 3

/** The server clips each pushed gradient to a running robust bound of the recent push norms. */
export class PushClipper {
  readonly history = new RunningBound({ window: 32, minSamples: PUSH_MIN_SAMPLES, factor: PUSH_CLIP_FACTOR })
  readonly gate = new ClipGate('pushed gradient', 1)

  constructor(private readonly report: (peer: PeerId, reason: string) => void = () => {}) {}

  /**
   * The gradient to apply for a push of `g` from `from`: `g` itself within the bound, else a
   * clipped copy. `trusted` (the server's own gradient) is never clipped, only recorded. `n` is
   * ‖g‖ when the caller already has it (its finiteness check, see clip.ts norm): the norm is
   * the clip's only pass over a push that stays within the bound.
   */
  clip(from: PeerId, g: Float32Array, trusted = false, n = norm(g)): { g: Float32Array; norm: number; tau: number; scale: number } {
    const tau = trusted ? Infinity : this.history.bound()
    const scale = clipScale(n, tau)
    this.history.observe(Math.min(n, tau))
    if (!trusted) {
      const why = this.gate.observe(from, n, tau)
      if (why) this.report(from, why)
    }
    if (scale === 1) return { g, norm: n, tau, scale }
    const out = new Float32Array(g.length)
    for (let k = 0; k < g.length; k++) out[k] = g[k] * scale
    return { g: out, norm: n, tau, scale }
  }
}

/**
 * OD-SGD's server drops pushes for rounds more than this past its own: a worker is at most a
 * round or two ahead, and a far-future round would otherwise sit in memory and let one worker
 * make the server skip ahead to it.
 */
export const PUSH_MAX_ROUNDS_AHEAD = 4

/** A worker may own at most this many times its fair share of the recent pushes. */
export const PUSH_SHARE_FACTOR = 2

/** The window of recent pushes is this many per roster member. */
export const PUSH_WINDOW_PER_PEER = 8

/**
 * Per-worker rate limit in logical time: of the last PUSH_WINDOW_PER_PEER·n admitted pushes
 * (n the number of pushing workers, the window at most `maxWindow`), one worker may own at most
 * PUSH_SHARE_FACTOR × its fair share among the workers that pushed (admitted or not) within the
 * last as many pushes received. An honest worker twice as fast as the others stays under it; one
 * left alone (the others gone or stalled) is refused for at most one window, after which it is
 * the only active worker and its fair share is everything; a worker that floods the server while
 * the others push gets the rest refused (answered with W, not applied). No wall clock: the limit
 * follows the swarm's pace, not a rate someone had to guess. Refusals are logged, not reported:
 * a worker is reported for what it pushes (PushClipper), and bursts are also what a scheduler
 * produces.
 */
export class PushShareLimiter {
  /** Senders of the last admitted pushes, and of the last received ones. */
  private readonly admitted = new Window()
  private readonly received = new Window()

  constructor(readonly maxWindow = 512) {}

  /** Admits (and records) a push from `from` among `n` pushing workers; false when over its share. */
  admit(from: PeerId, n: number): boolean {
    const window = Math.min(this.maxWindow, PUSH_WINDOW_PER_PEER * Math.max(1, n))
    this.received.push(from, window)
    this.admitted.shrink(window)
    const limit = Math.ceil((PUSH_SHARE_FACTOR * window) / this.received.distinct)
    if (this.admitted.count(from) >= limit) return false
    this.admitted.push(from, window)
    return true
  }

  /** Admitted pushes of `peer` in the current window. */
  count(peer: PeerId): number {
    return this.admitted.count(peer)
  }
}

/** The senders of the last pushes, with a count per sender. */
class Window {
  private readonly senders: PeerId[] = []
  private readonly counts = new Map<PeerId, number>()

  get distinct(): number {
    return this.counts.size
  }

  count(p: PeerId): number {
    return this.counts.get(p) ?? 0
  }

  push(p: PeerId, size: number): void {
    this.shrink(size - 1)
    this.senders.push(p)
    this.counts.set(p, this.count(p) + 1)
  }

  /** Drops the oldest entries beyond `size`. */
  shrink(size: number): void {
    while (this.senders.length > Math.max(0, size)) {
      const q = this.senders.shift()!
      const c = this.count(q) - 1
      if (c > 0) this.counts.set(q, c)
      else this.counts.delete(q)
    }
  }
}

/** Pulled weights may always lie within this fraction of the worker's own norm. */
export const PULL_OWN_RATIO = 0.5

/** …or within this multiple of the median recent pull distance, whichever is larger. */
export const PULL_FACTOR = 4

/** Worker side: checks pulled weights against the worker's own latest copy. */
export class PullCheck {
  readonly history = new RunningBound({ window: 32, minSamples: 4, factor: PULL_FACTOR })
  private rejectedRun = 0

  constructor(private readonly report: (peer: PeerId, reason: string) => void = () => {}) {}

  /**
   * The bound for weights pulled onto `own`: max(PULL_OWN_RATIO·‖own‖, PULL_FACTOR × median recent
   * pull distance), times 1 + the rejections in a row. Before there is a history, ‖own‖'s share
   * alone, or no bound at all when own is exactly 0 (nothing to compare against). The growth
   * keeps an honest server from locking a worker out: while the worker rejects, the server's W
   * moves on about one pull distance per pull, and the bound follows it; a scaled model, R
   * bounds away, is accepted only after R rejections in a row, reported every GATE_ROUNDS.
   */
  bound(own: Float32Array, ownNorm = norm(own)): number {
    const byOwn = PULL_OWN_RATIO * ownNorm
    const b = this.history.size < this.history.minSamples
      ? (byOwn > 0 ? byOwn : Infinity)
      : Math.max(byOwn, this.history.bound())
    return b * (1 + this.rejectedRun)
  }

  /**
   * Whether to adopt `W` pulled from `ps` while holding `own`. Only accepted distances are
   * recorded: a server cannot talk the bound up with rejected weights (the ½‖Ŵ‖ floor is what
   * lets a legitimate jump, a new server continuing from its own copy, through). Rejections in a
   * row report the server (GATE_ROUNDS at a time), which is how a hostile one is removed.
   */
  check(ps: PeerId, W: Float32Array, own: Float32Array): { ok: boolean; dist: number; bound: number } {
    // One pass for both (the check's whole cost): ‖W − Ŵ‖ and ‖Ŵ‖.
    const { dist: r, norm: ownNorm } = distAndNorm(W, own)
    const b = this.bound(own, ownNorm)
    const ok = r <= b
    if (ok) {
      this.history.observe(r)
      this.rejectedRun = 0
    } else if (++this.rejectedRun % GATE_ROUNDS === 0) {
      this.report(ps, `pulled weights rejected ${this.rejectedRun} times in a row (‖W − Ŵ‖ = ${r.toPrecision(3)} > ${b.toPrecision(3)})`)
    }
    return { ok, dist: r, bound: b }
  }
}
