import { describe, expect, it } from 'vitest'
import { centeredClip, centeredClipRadius } from './centered-clip'
import { trimCount } from './trimmed-mean'

const f = (...xs: number[]) => Float32Array.from(xs)
const f64 = (...xs: number[]) => Float64Array.from(xs)
const norm = (a: Float32Array) => Math.hypot(...a)
const sub = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i])

/** A seeded normal-ish vector (sum of uniforms), so failures reproduce. */
function rand(seed: number, d: number, scale = 1, offset = 0): Float32Array {
  let s = seed * 2654435761 >>> 0
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32)
  return Float32Array.from({ length: d }, () => offset + scale * (u() + u() + u() - 1.5))
}

describe('centered clipping (Karimireddy, He & Jaggi 2021)', () => {
  it('radius rule: the (n − b)-th smallest distance, b clamped to [0, n − 1]; Infinity with none', () => {
    const ds = f64(5, 1, 3, 2, 4)
    expect(centeredClipRadius(ds, 0)).toBe(5)
    expect(centeredClipRadius(ds, 1)).toBe(4)
    expect(centeredClipRadius(ds, 2)).toBe(3)
    expect(centeredClipRadius(ds, 9)).toBe(1)
    expect(centeredClipRadius(f64(), 1)).toBe(Infinity)
    // The input is not reordered (the caller's per-vector distances).
    expect([...ds]).toEqual([5, 1, 3, 2, 4])
  })

  it('with b hostile of n, τ never exceeds the largest honest distance, however far the hostile ones are', () => {
    for (let n = 3; n <= 12; n++) {
      const b = trimCount(n)
      const honest = Array.from({ length: n - b }, (_, i) => 1 + ((i * 7) % 5))
      for (const far of [0.5, 10, 1e30]) {
        const ds = Float64Array.from([...honest, ...Array.from({ length: b }, () => far)])
        expect(centeredClipRadius(ds, b)).toBeLessThanOrEqual(Math.max(...honest))
      }
    }
  })

  it('all-honest identical inputs give the plain average (the input), from any center', () => {
    const x = rand(1, 50)
    const vs = Array.from({ length: 8 }, () => new Float32Array(x))
    for (const center of [new Float32Array(50), rand(2, 50, 10)]) {
      for (const iterations of [1, 2, 3]) {
        const { out, scales } = centeredClip(vs, center, { iterations })
        for (let i = 0; i < 50; i++) expect(out[i]).toBeCloseTo(x[i], 5)
        expect([...scales].every((c) => c === 1)).toBe(true)
      }
    }
  })

  it('inputs at equal distance from the center (none clipped) give their plain average', () => {
    // Symmetric about c = (1, 1): every distance is 2, so τ = 2 and nothing is clipped.
    const c = f(1, 1)
    const vs = [f(3, 1), f(-1, 1), f(1, 3), f(1, -1), f(3, 1), f(1, 3)]
    const mean = [0, 1].map((i) => vs.reduce((s, v) => s + v[i], 0) / vs.length)
    const { out, tau } = centeredClip(vs, c, { iterations: 1 })
    expect(tau).toBe(2)
    expect(out[0]).toBeCloseTo(mean[0], 6)
    expect(out[1]).toBeCloseTo(mean[1], 6)
  })

  it('hand-computed: n = 4, b = 1, one huge outlier moves the result by exactly τ/n', () => {
    // Distances from 0: 1, 1, 1, 1000 → τ = 1 (3rd smallest). The outlier is scaled by 1/1000 to
    // (1, 0): v = ((1,0) + (0,1) + (−1,0) + (1,0)) / 4 = (0.25, 0.25).
    const vs = [f(1, 0), f(0, 1), f(-1, 0), f(1000, 0)]
    const { out, tau, scales } = centeredClip(vs, f(0, 0), { iterations: 1 })
    expect(tau).toBe(1)
    expect([...scales]).toEqual([1, 1, 1, 1 / 1000])
    expect(out[0]).toBeCloseTo(0.25, 7)
    expect(out[1]).toBeCloseTo(0.25, 7)
    // Without the outlier's term the result is (0, 0.25): it moved the result by τ/n = 0.25.
  })

  it('an outlier moves the result by at most τ/n per iteration, whatever its size', () => {
    const d = 40
    const n = 8
    const honest = Array.from({ length: n - 1 }, (_, k) => rand(10 + k, d, 1, 0.3))
    const center = rand(99, d, 0.1)
    for (const iterations of [1, 2, 3]) {
      const outs = [1e2, 1e6, 1e30].map((k) => {
        const bad = rand(7, d, k)
        // Per iteration: v' − v = (1/n) Σ c_k (x_k − v) with every term within τ.
        let v: Float32Array = new Float32Array(center)
        for (let it = 0; it < iterations; it++) {
          const { out, tau, scales, dists } = centeredClip([...honest, bad], v, { iterations: 1 })
          expect(scales[n - 1] * dists[n - 1]).toBeLessThanOrEqual(tau * (1 + 1e-9))
          expect(norm(sub(out, v))).toBeLessThanOrEqual(tau * (1 + 1e-6))
          v = out
        }
        // Iterating here equals the combiner's own L iterations.
        const direct = centeredClip([...honest, bad], center, { iterations }).out
        for (let i = 0; i < d; i++) expect(direct[i]).toBeCloseTo(v[i], 5)
        return direct
      })
      // A billion times larger outlier moves the result no further: the clip only keeps its direction.
      expect(norm(sub(outs[2], outs[1]))).toBeLessThan(1e-3)
    }
  })

  it('n ≤ 2 is the plain mean (no majority to tell the honest one by)', () => {
    const { out } = centeredClip([f(0, 0), f(10, 0)], f(0, 0), { iterations: 1 })
    expect([...out]).toEqual([5, 0])
    expect([...centeredClip([f(3, -2)], f(0, 0)).out]).toEqual([3, -2])
  })

  it('writes to `out` (which may alias the center), reads only the first d of longer vectors, and is deterministic', () => {
    const vs = Array.from({ length: 5 }, (_, k) => rand(k, 12))
    const center = rand(42, 10)
    const a = centeredClip(vs, center, { iterations: 2 }).out
    const aliased = new Float32Array(center)
    const scratch = new Float64Array(64)
    const b = centeredClip(vs, aliased, { iterations: 2, out: aliased, scratch })
    expect(b.out).toBe(aliased)
    expect([...b.out]).toEqual([...a])
    expect(a.length).toBe(10)
  })

  it('rejects no vectors, short vectors and L < 1', () => {
    expect(() => centeredClip([], f(0))).toThrow(/no vectors/)
    expect(() => centeredClip([f(1)], f(0, 0))).toThrow(/length/)
    expect(() => centeredClip([f(1)], f(0), { iterations: 0 })).toThrow(/iterations/)
  })
})
