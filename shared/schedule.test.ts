import { describe, expect, it } from 'vitest'
import type { Schedule, SyncRule } from './config'
import { lrAt, nextH, roundPlan, scaledLrAt } from './schedule'

const vitCos: Schedule = { kind: 'cosine', warmupSteps: 10_000, minLr: 1e-6 }

describe('schedule', () => {
  it('warmup ramps from minLr to the peak, cosine ends at minLr', () => {
    expect(lrAt(vitCos, 0.008, 0, 93_600)).toBeCloseTo(1e-6, 12)
    expect(lrAt(vitCos, 0.008, 10_000, 93_600)).toBeCloseTo(0.008, 12)
    expect(lrAt(vitCos, 0.008, 93_600, 93_600)).toBeCloseTo(1e-6, 12)
    expect(lrAt({ kind: 'linear', warmupSteps: 0, minLr: 0 }, 1, 50, 100)).toBeCloseTo(0.5, 12)
    const st: Schedule = { kind: 'step', warmupSteps: 0, milestones: [0.5, 0.75], gamma: 0.1 }
    expect(lrAt(st, 1, 49, 100)).toBe(1)
    expect(lrAt(st, 1, 50, 100)).toBeCloseTo(0.1, 12)
    expect(lrAt(st, 1, 80, 100)).toBeCloseTo(0.01, 12)
    expect(lrAt({ kind: 'constant', warmupSteps: 10 }, 2, 5, 100)).toBeCloseTo(1, 12)
  })

  it('QSR on the ViT-B config gives exactly 9,711 rounds, 7,817 at α=0.02, 25 % at constant H=4', () => {
    const T = 300 * 312
    expect(roundPlan({ kind: 'qsr', hBase: 4, alpha: 0.0175 }, vitCos, 0.008, T).length).toBe(9711)
    expect(roundPlan({ kind: 'qsr', hBase: 4, alpha: 0.02 }, vitCos, 0.008, T).length).toBe(7817)
    expect(roundPlan({ kind: 'qsr', hBase: 4, alpha: 0 }, vitCos, 0.008, T).length).toBe(T / 4)
  })

  it('small config: cosine 958 / linear 1,037 / step 765 rounds', () => {
    const sync: SyncRule = { kind: 'qsr', hBase: 2, alpha: 0.3 }
    expect(roundPlan(sync, { kind: 'cosine', warmupSteps: 150, minLr: 0 }, 0.4, 3000).length).toBe(958)
    expect(roundPlan(sync, { kind: 'linear', warmupSteps: 150, minLr: 0 }, 0.4, 3000).length).toBe(1037)
    expect(roundPlan(sync, { kind: 'step', warmupSteps: 150, milestones: [0.5, 0.75], gamma: 0.1 }, 0.4, 3000).length).toBe(765)
  })

  it('H never exceeds the remaining steps or hMax, is ≥ 1 and H_base during warmup', () => {
    const T = 93_600
    for (const sync of [{ kind: 'qsr', hBase: 4, alpha: 0.0175 }, { kind: 'qsr', hBase: 4, alpha: 0.05, hMax: 64 }] as SyncRule[]) {
      const plan = roundPlan(sync, vitCos, 0.008, T)
      for (const { t, h } of plan) {
        expect(h).toBeGreaterThanOrEqual(1)
        expect(t + h).toBeLessThanOrEqual(T)
        if (sync.kind === 'qsr' && sync.hMax) expect(h).toBeLessThanOrEqual(sync.hMax)
        if (t < 10_000) expect(h).toBe(4)
      }
      const last = plan[plan.length - 1]
      expect(last.t + last.h).toBe(T)
    }
    expect(nextH({ kind: 'qsr', hBase: 2, alpha: 1 }, 99, 0, 100, 0)).toBe(1)
  })

  it('linear scaling (Goyal et al.): peak lr·B/B_ref, warmup from the base lr, the schedule decays from the peak', () => {
    const lin = { kind: 'linear', referenceBatch: 256 } as const
    const warm: Schedule = { kind: 'constant', warmupSteps: 100 }
    // B = 1024 → k = 4, peak 0.4; warmup from 0.1: t = 50 → 0.1 + 0.3·50/100 = 0.25.
    expect(scaledLrAt(warm, 0.1, lin, 1024, 0, 1000)).toBeCloseTo(0.1, 12)
    expect(scaledLrAt(warm, 0.1, lin, 1024, 50, 1000)).toBeCloseTo(0.25, 12)
    expect(scaledLrAt(warm, 0.1, lin, 1024, 100, 1000)).toBeCloseTo(0.4, 12)
    expect(scaledLrAt(warm, 0.1, lin, 1024, 900, 1000)).toBeCloseTo(0.4, 12)
    // Cosine after warmup decays from the scaled peak: halfway through the decay → 0.2.
    const cos: Schedule = { kind: 'cosine', warmupSteps: 100, minLr: 0 }
    expect(scaledLrAt(cos, 0.1, lin, 1024, 550, 1000)).toBeCloseTo(0.2, 12)
    // A group shrunk to B = 768 mid-run: k = 3 → 0.3 (the docs/algorithms.md "SSGD under churn" rescaling).
    expect(scaledLrAt(warm, 0.1, lin, 768, 500, 1000)).toBeCloseTo(0.3, 12)
    // k ≤ 1: the schedule's own warmup (from 0 here) up to lr·k = 0.05.
    expect(scaledLrAt(warm, 0.1, lin, 128, 50, 1000)).toBeCloseTo(0.025, 12)
    expect(scaledLrAt(warm, 0.1, lin, 128, 200, 1000)).toBeCloseTo(0.05, 12)
    // 'none' is the plain schedule whatever the batch.
    expect(scaledLrAt(warm, 0.1, { kind: 'none' }, 4096, 200, 1000)).toBe(lrAt(warm, 0.1, 200, 1000))
    expect(() => scaledLrAt(warm, 0.1, lin, 0, 5, 1000)).toThrow(/global batch/)
  })
})
