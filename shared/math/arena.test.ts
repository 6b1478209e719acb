import { describe, expect, it } from 'vitest'
import { assembleKernels } from '../../tools/build-wasm'
import { VectorArena, simdAvailable } from './arena'
import { KERNELS_WASM } from './kernels-wasm'
import { mixInto, sqDist } from './vector'

function rng(seed: number) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  }
}
const vec = (n: number, r: () => number) => Float32Array.from({ length: n }, r)
const close = (a: Float32Array, b: Float32Array, tol = 1e-6) => {
  expect(a.length).toBe(b.length)
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(a[i] - b[i]) > tol * (1 + Math.abs(b[i]))) throw new Error(`element ${i}: ${a[i]} vs ${b[i]}`)
  }
}

describe('VectorArena (WebAssembly SIMD kernels)', () => {
  it('the committed kernel bytes are the assembled kernels.wat', async () => {
    expect(Array.from(await assembleKernels())).toEqual(Array.from(KERNELS_WASM))
  })

  it('runs the SIMD kernels on Node (no silent fallback to the JS loops)', () => {
    expect(simdAvailable()).toBe(true)
    expect(new VectorArena(10, { slots: 1 }).simd).toBe(true)
    expect(new VectorArena(10, { slots: 1, forceJs: true }).simd).toBe(false)
  })

  for (const forceJs of [false, true]) {
    describe(forceJs ? 'JS fallback' : 'SIMD', () => {
      it('mix equals mixInto for 1–9 inputs, odd lengths, arena and outside vectors', () => {
        const r = rng(1)
        for (const n of [1, 3, 4, 5, 1001]) {
          for (let k = 1; k <= 9; k++) {
            const arena = new VectorArena(n, { slots: 4, forceJs })
            const own = arena.alloc()
            own.set(vec(n, r))
            const out = arena.alloc()
            const inputs = [own, ...Array.from({ length: k - 1 }, () => vec(n, r))]
            const w = inputs.map(() => r() + 0.5)
            const ref = mixInto(new Float32Array(n), w, inputs)
            close(arena.mix(out, w, inputs), ref)
            // Output outside the arena, and an output that aliases an input.
            close(arena.mix(new Float32Array(n), w, inputs), ref)
            const alias = new Float32Array(own)
            const aliasInputs = [alias, ...inputs.slice(1)]
            arena.mix(alias, w, aliasInputs)
            close(alias, ref)
          }
        }
      })

      it('momentum matches the scalar heavy-ball step, stepping from x or from a mixed base', () => {
        const r = rng(2)
        const n = 1003
        const arena = new VectorArena(n, { slots: 3, forceJs })
        const x = arena.alloc(), m = arena.alloc(), base = arena.alloc()
        x.set(vec(n, r)); m.set(vec(n, r)); base.set(vec(n, r))
        const g = vec(n, r)
        const ex = new Float32Array(x), em = new Float32Array(m)
        for (let i = 0; i < n; i++) {
          em[i] = 0.9 * em[i] + g[i] + 0.01 * ex[i]
          ex[i] = base[i] - 0.1 * em[i]
        }
        arena.momentum(x, m, g, 0.9, 0.1, 0.01, base)
        close(x, ex)
        close(m, em)
        // Vectors from outside the arena are staged and written back.
        const x2 = vec(n, r), m2 = vec(n, r)
        const ex2 = new Float32Array(x2), em2 = new Float32Array(m2)
        for (let i = 0; i < n; i++) {
          em2[i] = 0.5 * em2[i] + g[i]
          ex2[i] -= 0.2 * em2[i]
        }
        arena.momentum(x2, m2, g, 0.5, 0.2, 0)
        close(x2, ex2)
        close(m2, em2)
      })

      it('sqDist matches the float64 scalar sum', () => {
        const r = rng(3)
        const n = 5001
        const arena = new VectorArena(n, { slots: 1, forceJs })
        const a = arena.alloc()
        a.set(vec(n, r))
        const b = vec(n, r)
        expect(arena.sqDist(a, b)).toBeCloseTo(sqDist(a, b), 4)
      })
    })
  }

  it('views stay attached and slots are bounded', () => {
    const arena = new VectorArena(100, { slots: 2 })
    const a = arena.alloc()
    arena.alloc()
    expect(() => arena.alloc()).toThrow(/slots/)
    for (let i = 0; i < 50; i++) arena.mix(a, [0.5, 0.5], [a, new Float32Array(100).fill(1)])
    expect(a.length).toBe(100)
    expect(a[0]).toBeCloseTo(1, 5)
    expect(arena.owns(a)).toBe(true)
    expect(arena.owns(new Float32Array(100))).toBe(false)
    expect(() => arena.mix(new Float32Array(99), [1], [a])).toThrow(/length/)
  })
})
