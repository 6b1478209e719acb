/**
 * When a run counts as diverged (docs/algorithms.md "Divergence"). The simulator and every
 * training session use this one rule, so a run the simulator calls diverged is one a real room
 * would stop, and the other way round.
 *
 * The rule: a training loss that is ±Infinity, or the mean of the last WINDOW finite losses above
 * FACTOR × max(1, the lowest of the first WINDOW finite losses). The lowest, not the mean: a
 * learning rate far too large blows the loss up within the first few steps, and a mean would
 * count the blow-up as the starting point. A NaN loss is "not measured" (some
 * local steps skip reading the loss back for speed); non-finite parameters are caught where
 * they are written, and the caller reports those with `nonFinite()`.
 *
 * Why these numbers: a 10-class cross-entropy starts near ln 10 ≈ 2.3, so the bar is a mean loss
 * above ~23 over ten steps: beyond the noise of an honest run (whose loss falls from its start;
 * bench/convergence-matrix.test.ts checks every algorithm and topology against this rule), and
 * reached long before the values overflow. The floor of 1 keeps a run that resumes from a good
 * checkpoint (loss 0.05) from tripping on noise at 0.5.
 */
export const DIVERGENCE_WINDOW = 10
export const DIVERGENCE_FACTOR = 10

export interface Divergence {
  /** The step (as the caller counts) at which the rule fired. */
  step: number
  /** Mean of the recent window (Infinity when a loss or a parameter was not finite). */
  loss: number
  /** Lowest loss of the first window: what the loss grew from. */
  startLoss: number | null
  reason: string
}

export class DivergenceDetector {
  private readonly first: number[] = []
  private readonly recent: number[] = []
  private verdict: Divergence | null = null

  constructor(private readonly window = DIVERGENCE_WINDOW, private readonly factor = DIVERGENCE_FACTOR) {}

  get diverged(): Divergence | null {
    return this.verdict
  }

  /** Feeds one training loss; returns the verdict once the rule fires (and from then on). */
  observe(loss: number | null | undefined, step: number): Divergence | null {
    if (this.verdict || loss === null || loss === undefined || Number.isNaN(loss)) return this.verdict
    if (!Number.isFinite(loss)) return this.nonFinite(step, `the training loss is ${loss}`)
    if (this.first.length < this.window) this.first.push(loss)
    this.recent.push(loss)
    if (this.recent.length > this.window) this.recent.shift()
    if (this.first.length < this.window || this.recent.length < this.window) return null
    const start = Math.min(...this.first)
    const now = mean(this.recent)
    const bar = this.factor * Math.max(1, start)
    if (now > bar)
      this.verdict = { step, loss: now, startLoss: start, reason: `the mean training loss grew from ${fmt(start)} to ${fmt(now)} (limit ${fmt(bar)})` }
    return this.verdict
  }

  /** Something was not finite (a loss, the parameters): diverged now. */
  nonFinite(step: number, reason: string): Divergence {
    this.verdict ??= { step, loss: Infinity, startLoss: this.first.length ? Math.min(...this.first) : null, reason }
    return this.verdict
  }
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length
}

function fmt(x: number): string {
  return Math.abs(x) >= 1e4 ? x.toExponential(2) : x.toFixed(3)
}

/** The advice shown with a diverged run (dashboard, host page, volunteer tab). */
export function divergenceHint(config: { lr: number; algorithm: string; topology: string; momentum: number }): string {
  const parts = [`lower the learning rate (e.g. ${+(config.lr / 3).toPrecision(2)} instead of ${config.lr})`]
  if (config.momentum >= 0.9) parts.push(`or the momentum (${config.momentum})`)
  if (!['clique', 'star'].includes(config.topology)) parts.push(`or try a better-connected topology than '${config.topology}'`)
  return `Start a new run: ${parts.join(', ')}.`
}
