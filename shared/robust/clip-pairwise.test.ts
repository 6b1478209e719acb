import { describe, expect, it } from 'vitest'
import { dist, norm } from './clip'
import { clippedPairwiseMove, PairwiseClip } from './clip-pairwise'

const f32 = (...v: number[]) => Float32Array.from(v)

describe('clippedPairwiseMove: x ← cur + share · clip(theirs − mine, τ)', () => {
  it('by hand: (6, 8) at 10 clipped to 5, half of it', () => {
    const out = new Float32Array(2)
    const r = clippedPairwiseMove(out, f32(0, 0), f32(0, 0), f32(6, 8), 0.5, 5)
    expect(r).toEqual({ dist: 10, scale: 0.5 })
    expect(Array.from(out)).toEqual([1.5, 2])
  })

  it('within the radius it is the plain pairwise average, applied to the current model', () => {
    const out = new Float32Array(2)
    // x moved by (1, 0) since the snapshot: the difference form keeps that step.
    clippedPairwiseMove(out, f32(2, 1), f32(1, 1), f32(3, 5), 0.5, 100)
    expect(Array.from(out)).toEqual([3, 3])
  })

  for (const [name, k] of [['−10 × model', -10], ['100 × model', 100]] as const) {
    it(`a hostile partner sending ${name} moves an honest peer by at most τ/2`, () => {
      const mine = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i + 1))
      const pc = new PairwiseClip()
      const tau = pc.radius('bad', mine) // ‖mine‖ before any history
      expect(tau).toBeCloseTo(norm(mine), 6)
      const out = new Float32Array(32)
      clippedPairwiseMove(out, mine, mine, mine.map((v) => k * v), 0.5, tau)
      expect(dist(out, mine)).toBeLessThanOrEqual(tau / 2 + 1e-5)
    })
  }
})

describe('PairwiseClip', () => {
  it('radius: ‖own‖ (or none at 0) before 4 exchanges with others, then the median of the other partners\' recorded min(‖Δ‖, τ)', () => {
    const pc = new PairwiseClip()
    expect(pc.radius('a', f32(0, 0))).toBe(Infinity)
    expect(pc.radius('a', f32(3, 4))).toBe(5)
    for (const r of [1, 2, 3]) pc.judge('b', r, 10)
    expect(pc.radius('a', f32(3, 4))).toBe(5)
    pc.judge('c', 1000, 10) // recorded as 10, not 1000
    // For a: b's 1, 2, 3 and c's 10 → median 2.5.
    expect(pc.radius('a', f32(3, 4))).toBe(2.5)
    // For c: its own distances do not count; only b's three → not enough yet.
    expect(pc.radius('c', f32(3, 4))).toBe(5)
    pc.judge('b', 4, 10)
    expect(pc.radius('c', f32(3, 4))).toBe(2.5)
    // For b: only c's 10.
    expect(pc.radius('b', f32(3, 4))).toBe(5)
  })

  it('reports a partner clipped in 10 exchanges in a row, with the evidence', () => {
    const reports: string[] = []
    const pc = new PairwiseClip((p, why) => reports.push(`${p}: ${why}`))
    for (let k = 0; k < 9; k++) pc.judge('bad', 100, 1)
    pc.judge('good', 0.5, 1)
    expect(reports).toEqual([])
    pc.judge('bad', 100, 1)
    expect(reports).toEqual(['bad: pairwise exchange clipped in 10 consecutive rounds (‖Δ‖ = 100 > τ = 1.00)'])
  })
})
