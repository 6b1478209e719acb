import type { LrScaling, Schedule, SyncRule } from './config'

/**
 * Learning-rate schedules and the Quadratic Synchronization Rule (docs/algorithms.md "Quadratic Synchronization Rule"),
 * formula for formula as the QSR authors' scheduler (hmgxr128/QSR
 * xscheduler.py / localopt.py). All keyed to the *global* step t (docs/algorithms.md "Global step").
 */

/** Floor of the warmup ramp: warmup goes linearly from the schedule's final lr up to the peak. */
function finalLr(schedule: Schedule): number {
  return schedule.kind === 'cosine' || schedule.kind === 'linear' ? schedule.minLr : 0
}

/** lr at global step t for peak lr `lr` over `totalSteps` steps. */
export function lrAt(schedule: Schedule, lr: number, t: number, totalSteps: number): number {
  const warm = schedule.warmupSteps
  const lmin = finalLr(schedule)
  const T = totalSteps
  if (t < warm) return lmin + (t * (lr - lmin)) / warm
  switch (schedule.kind) {
    case 'constant':
      return lr
    case 'cosine': {
      if (T <= warm) return lr
      const d = Math.min(t - warm, T - warm)
      return lmin + 0.5 * (lr - lmin) * (1 + Math.cos((d / (T - warm)) * Math.PI))
    }
    case 'linear': {
      if (T <= warm) return lr
      const d = Math.min(t - warm, T - warm)
      return lmin + ((T - warm - d) * (lr - lmin)) / (T - warm)
    }
    case 'step': {
      let k = 0
      for (const p of schedule.milestones) if (t >= p * T) k++
      return lr * Math.pow(schedule.gamma, k)
    }
  }
}

/**
 * SSGD's lr at global step t for a step whose all-reduce summed `globalBatch` samples (docs/algorithms.md "SSGD linear learning-rate scaling",
 * Goyal et al. 2017). With linear scaling the peak is lr·k, k = globalBatch/referenceBatch; for
 * k > 1 the warmup is Goyal's gradual one, from the base lr (right for one reference batch) up
 * to lr·k, after which the schedule decays from lr·k. For k ≤ 1 nothing needs warming up beyond
 * the schedule's own warmup, which then applies to lr·k unchanged.
 *
 * @example scaledLrAt({ kind: 'constant', warmupSteps: 100 }, 0.1, { kind: 'linear', referenceBatch: 256 }, 1024, 50, 1000) // 0.25
 */
export function scaledLrAt(schedule: Schedule, lr: number, scaling: LrScaling, globalBatch: number, t: number, totalSteps: number): number {
  if (scaling.kind === 'none') return lrAt(schedule, lr, t, totalSteps)
  const k = globalBatch / scaling.referenceBatch
  if (!(k > 0) || !Number.isFinite(k)) throw new Error(`scaledLrAt: bad global batch ${globalBatch}`)
  const peak = lr * k
  if (k > 1 && t < schedule.warmupSteps) return lr + ((peak - lr) * t) / schedule.warmupSteps
  return lrAt(schedule, peak, t, totalSteps)
}

/**
 * Local steps for the round starting at global step t (recomputed right after each averaging).
 * QSR: H_base during warmup or when α = 0, else max(H_base, ⌊(α/η_t)²⌋); always capped by the
 * remaining steps (so the last round ends at T) and by H_max, and at least 1.
 */
export function nextH(sync: SyncRule, t: number, lrNow: number, totalSteps: number, warmupSteps: number): number {
  const remaining = Math.max(1, totalSteps - t)
  if (sync.kind === 'constant') return Math.max(1, Math.min(sync.h, remaining))
  let h: number
  if (t < warmupSteps || sync.alpha === 0) h = sync.hBase
  else {
    // lr may reach exactly 0 at the end of a schedule: (α/0)² = ∞ → capped below.
    const q = lrNow > 0 ? Math.floor((sync.alpha / lrNow) ** 2) : Number.POSITIVE_INFINITY
    h = Math.max(q, sync.hBase)
  }
  if (sync.hMax !== undefined) h = Math.min(h, sync.hMax)
  return Math.max(1, Math.min(h, remaining))
}

/** Round boundaries (t, H) of a whole run: for tests, the simulator and docs. */
export function roundPlan(sync: SyncRule, schedule: Schedule, lr: number, totalSteps: number): { t: number; h: number }[] {
  const out: { t: number; h: number }[] = []
  let t = 0
  while (t < totalSteps) {
    const h = nextH(sync, t, lrAt(schedule, lr, t, totalSteps), totalSteps, schedule.warmupSteps)
    out.push({ t, h })
    t += h
  }
  return out
}
