import { describe, expect, it } from 'vitest'
import { trimCount, trimmedMean } from './trimmed-mean'

const f = (...xs: number[]) => Float32Array.from(xs)

describe('trimmed mean (coordinate-wise)', () => {
  it('trims ⌊n/4⌋ at each end, at least 1 from n = 3, none for n ≤ 2', () => {
    expect([1, 2, 3, 4, 5, 7, 8, 9, 12].map((n) => trimCount(n))).toEqual([0, 0, 1, 1, 1, 1, 2, 2, 3])
    for (let n = 1; n <= 64; n++) expect(n - 2 * trimCount(n)).toBeGreaterThanOrEqual(1)
  })

  it('hand-computed: drops the b smallest and b largest per coordinate, whoever sent them', () => {
    // n = 5, b = 1. Coordinate 0: {1, 2, 3, 4, 100} → (2 + 3 + 4) / 3 = 3.
    // Coordinate 1: {−50, 0, 1, 2, 3} → (0 + 1 + 2) / 3 = 1. Different members are extreme per coordinate.
    const vs = [f(1, 3), f(2, -50), f(3, 0), f(4, 1), f(100, 2)]
    expect(Array.from(trimmedMean(vs))).toEqual([3, 1])
  })

  it('ties are dropped by count: {5, 5, 5, 1, 9} → 5; {2, 2, 2, 2, 7} → 2; {0, 0, 9, 9, 9} → 6', () => {
    const vs = [f(5, 2, 0), f(5, 2, 0), f(5, 2, 9), f(1, 2, 9), f(9, 7, 9)]
    expect(Array.from(trimmedMean(vs))).toEqual([5, 2, 6])
  })

  it('n = 3 is the median, n = 4 the mean of the middle two, b = 2 at n = 8', () => {
    expect(Array.from(trimmedMean([f(7), f(-1e6), f(1)]))).toEqual([1])
    expect(Array.from(trimmedMean([f(1), f(1e9), f(3), f(-4)]))).toEqual([2])
    // {−1e9, −3, 1, 2, 3, 4, 8, 1e9}: drop −1e9, −3 and 8, 1e9 → (1 + 2 + 3 + 4) / 4 = 2.5.
    expect(Array.from(trimmedMean([f(1), f(-1e9), f(2), f(8), f(3), f(1e9), f(4), f(-3)]))).toEqual([2.5])
  })

  it('n ≤ 2 is the plain mean', () => {
    expect(Array.from(trimmedMean([f(1, -2)]))).toEqual([1, -2])
    expect(Array.from(trimmedMean([f(1, -2), f(3, 6)]))).toEqual([2, 2])
  })

  it('all-honest input equals the plain average within 1e-6 (identical, and symmetric spreads), in any order', () => {
    const d = 257
    const centre = Float32Array.from({ length: d }, (_, i) => Math.sin(i) * 3)
    for (const n of [3, 5, 8]) {
      const same = Array.from({ length: n }, () => new Float32Array(centre))
      const tm = trimmedMean(same)
      for (let i = 0; i < d; i++) expect(Math.abs(tm[i] - centre[i])).toBeLessThan(1e-6)
      // Honest spread symmetric about the centre: the trimmed mean is the plain mean.
      const spread = Array.from({ length: n }, (_, k) => Float32Array.from(centre, (c, i) => c + ((k - (n - 1) / 2) * 0.01 * Math.cos(i))))
      const mean = new Float64Array(d)
      for (const v of spread) for (let i = 0; i < d; i++) mean[i] += v[i] / n
      const a = trimmedMean(spread)
      const b = trimmedMean([...spread].reverse())
      for (let i = 0; i < d; i++) {
        expect(Math.abs(a[i] - mean[i])).toBeLessThan(1e-6)
        expect(b[i]).toBe(a[i])
      }
    }
  })

  it('a sub-range [from, to) into a given output', () => {
    const out = new Float32Array(3).fill(-1)
    trimmedMean([f(9, 1, 2), f(9, 3, 4), f(9, 5, 60)], 1, 1, 3, out)
    expect(Array.from(out)).toEqual([3, 4, -1])
  })

  it('refuses a trim that leaves nothing', () => {
    expect(() => trimmedMean([f(1), f(2)], 1)).toThrow()
    expect(() => trimmedMean([])).toThrow()
  })
})
