import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../../shared/config'
import type { HistoryRun } from '../../shared/protocol/history'
import { estimateProgress, etaText } from './progress'
import { lrVaries } from './swarm'

describe('run progress and ETA', () => {
  it('rate from the recent window, ETA from what is left', () => {
    // 100 steps in the last 20 s = 5 steps/s; 1000 − 300 = 700 steps left → 140 s.
    const p = estimateProgress([{ at: 0, step: 0 }, { at: 40_000, step: 200 }, { at: 60_000, step: 300 }], 1000, 30_000)
    expect(p.stepsPerSec).toBeCloseTo(5)
    expect(p.etaMs).toBeCloseTo(140_000)
    expect(p.fraction).toBeCloseTo(0.3)
    expect(etaText(p)).toBe('about 2m 20s left')
  })

  it('unknown rate until time has passed; done at totalSteps', () => {
    expect(estimateProgress([{ at: 0, step: 5 }], 100).etaMs).toBeNull()
    const done = estimateProgress([{ at: 0, step: 90 }, { at: 5000, step: 120 }], 100)
    expect(done.done).toBe(true)
    expect(done.fraction).toBe(1)
    expect(etaText(done)).toBe('done')
  })
})

describe('learning-rate chart only when the rate varies', () => {
  const run = (lrs: number[], schedule = defaultConfig().schedule): HistoryRun => ({
    run: 0, config: { ...defaultConfig(), schedule }, started: 0, diverged: null,
    points: lrs.map((lr, i) => ({ t: i, loss: 1, accuracy: 0.5, globalStep: i, bytes: 0, peers: 1, lr, h: null, consensus: null })),
  })
  it('constant schedule and constant reports: no chart', () => expect(lrVaries([run([0.05, 0.05, 0.05])])).toBe(false))
  it('a cosine schedule, a warmup or changing reports: a chart', () => {
    expect(lrVaries([run([0.05], { kind: 'cosine', warmupSteps: 0, minLr: 0 })])).toBe(true)
    expect(lrVaries([run([0.05], { kind: 'constant', warmupSteps: 10 })])).toBe(true)
    expect(lrVaries([run([0.05, 0.1])])).toBe(true)
  })
})
