import { describe, expect, it } from 'vitest'
import { axpy, maxAbsDiff, mixInto, momentumStep, scale, weightedMix } from './vector'

/** Deterministic pseudo-random vector (LCG) so failures reproduce. */
function vec(n: number, seed: number): Float32Array {
  let s = seed * 2654435761 >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0
    out[i] = s / 2 ** 32 - 0.5
  }
  return out
}

describe('mixInto (fused single-pass mixing)', () => {
  for (const k of [1, 2, 3, 4, 5, 6, 9, 10]) {
    it(`matches weightedMix for ${k} inputs`, () => {
      const n = 1003
      const vecs = Array.from({ length: k }, (_, j) => vec(n, j + 1))
      const w = Array.from({ length: k }, (_, j) => (j + 1) / 7)
      const ref = weightedMix(new Float32Array(n), w, vecs)
      const out = mixInto(new Float32Array(n).fill(99), w, vecs)
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-6)
    })
  }

  it('uses every weight (a wrong weight on any input changes the result)', () => {
    const n = 8
    const vecs = Array.from({ length: 7 }, (_, j) => new Float32Array(n).fill(10 ** j))
    const w = [1, 1, 1, 1, 1, 1, 1]
    expect(mixInto(new Float32Array(n), w, vecs)[3]).toBe(1111111)
  })

  it('allows out to alias an input', () => {
    const a = vec(100, 1), b = vec(100, 2), c = vec(100, 3)
    const ref = weightedMix(new Float32Array(100), [0.5, 0.25, 0.25], [a, b, c])
    mixInto(b, [0.5, 0.25, 0.25], [a, b, c])
    expect(maxAbsDiff(b, ref)).toBeLessThan(1e-6)
  })

  it('zero inputs gives zeros; mismatched lengths throw', () => {
    expect([...mixInto(new Float32Array(3).fill(1), [], [])]).toEqual([0, 0, 0])
    expect(() => mixInto(new Float32Array(3), [1, 2], [new Float32Array(3)])).toThrow(/mismatch/)
    expect(() => mixInto(new Float32Array(3), [1], [new Float32Array(2)])).toThrow(/shorter/)
  })
})

describe('momentumStep (fused heavy-ball)', () => {
  it('matches scale + axpy + axpy over several steps', () => {
    const n = 517
    const x1 = vec(n, 1), x2 = new Float32Array(x1)
    const m1 = new Float32Array(n), m2 = new Float32Array(n)
    for (let t = 0; t < 5; t++) {
      const g = vec(n, 10 + t)
      scale(m1, 0.9)
      axpy(m1, 1, g)
      axpy(x1, -0.05, m1)
      momentumStep(x2, m2, g, 0.9, 0.05)
    }
    expect(maxAbsDiff(m1, m2)).toBeLessThan(1e-5)
    expect(maxAbsDiff(x1, x2)).toBeLessThan(1e-5)
    expect(maxAbsDiff(x1, vec(n, 1))).toBeGreaterThan(0.01)
  })

  it('beta 0 is plain SGD and lr 0 leaves x unchanged', () => {
    const x = new Float32Array([1, 2]), m = new Float32Array([5, 5])
    momentumStep(x, m, new Float32Array([1, -1]), 0, 0.5)
    expect([...x]).toEqual([0.5, 2.5])
    expect([...m]).toEqual([1, -1])
    momentumStep(x, m, new Float32Array([3, 3]), 0.5, 0)
    expect([...x]).toEqual([0.5, 2.5])
    expect([...m]).toEqual([3.5, 2.5])
  })

  it('throws on length mismatch', () => {
    expect(() => momentumStep(new Float32Array(2), new Float32Array(3), new Float32Array(2), 0.9, 0.1)).toThrow()
  })
})
