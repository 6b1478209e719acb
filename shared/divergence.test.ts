import { describe, expect, it } from 'vitest'
import { DIVERGENCE_FACTOR, DIVERGENCE_WINDOW, DivergenceDetector, divergenceHint } from './divergence'

describe('divergence rule', () => {
  it('fires when the recent mean loss exceeds 10 × the starting mean, not before', () => {
    const d = new DivergenceDetector()
    let step = 0
    for (let i = 0; i < DIVERGENCE_WINDOW; i++) expect(d.observe(2.3, step++)).toBeNull()
    // Noisy but honest: up to 5× the start for a few steps does not count.
    for (let i = 0; i < 5; i++) expect(d.observe(11, step++)).toBeNull()
    for (let i = 0; i < 20; i++) expect(d.observe(1.5, step++)).toBeNull()
    // A blow-up: the window mean crosses 23 a few steps in.
    let v = null
    while (!v) v = d.observe(1e3, step++)
    expect(v.step).toBeLessThan(step)
    expect(v.startLoss).toBeCloseTo(2.3)
    expect(v.loss).toBeGreaterThan(DIVERGENCE_FACTOR * 2.3)
    expect(v.reason).toMatch(/grew from 2\.300/)
    // Sticky: later losses do not undo it.
    expect(d.observe(0.1, step++)).toBe(v)
  })

  it('±Infinity diverges at once; NaN is "not measured"; a low start is floored at 1', () => {
    const a = new DivergenceDetector()
    expect(a.observe(NaN, 0)).toBeNull()
    expect(a.observe(Infinity, 1)).toMatchObject({ step: 1, loss: Infinity })
    const b = new DivergenceDetector()
    for (let i = 0; i < DIVERGENCE_WINDOW; i++) b.observe(0.05, i)
    // 10 × 0.05 = 0.5 would trip on noise; the floor puts the bar at 10.
    for (let i = 0; i < DIVERGENCE_WINDOW; i++) expect(b.observe(2, 100 + i)).toBeNull()
    const c = new DivergenceDetector()
    expect(c.nonFinite(7, 'parameters not finite')).toMatchObject({ step: 7, startLoss: null })
  })

  it('the hint names a lower learning rate, the momentum when high, and the topology when sparse', () => {
    const h = divergenceHint({ lr: 0.3, algorithm: 'dpsgd', topology: 'ring', momentum: 0.9 })
    expect(h).toContain('0.1 instead of 0.3')
    expect(h).toContain('momentum')
    expect(h).toContain("'ring'")
    expect(divergenceHint({ lr: 0.3, algorithm: 'ssgd', topology: 'clique', momentum: 0 })).not.toContain('topology')
  })
})
