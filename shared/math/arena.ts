import { KERNELS_WASM } from './kernels-wasm'
import { mixInto, sqDist } from './vector'

/**
 * Float32 vectors that live inside one WebAssembly memory, so the SIMD kernels of kernels.wat
 * work on them in place.
 *
 * Why: V8 runs the JS loops of vector.ts scalar (float32 → float64 → float32 per element); the
 * DPSGD step on a 1M-parameter model (mix self + 4 neighbours, heavy-ball update) took ~12 ms of
 * host time that way, where f32x4 kernels take ~2 ms (bench/mixing.ts). A kernel can only see
 * its own linear memory, so the algorithm's long-lived vectors (x, m, the mixed model) are
 * allocated here, and vectors that arrive from elsewhere (neighbour payloads, gradients) are
 * copied into scratch slots just before a kernel runs — one memcpy each, which is cheaper than
 * the scalar arithmetic it replaces.
 *
 * The memory is sized once at construction and never grows: growing a non-shared
 * WebAssembly.Memory detaches every view handed out, and the algorithms keep their views for the
 * whole run. Every slot is padded to a multiple of 4 floats so the kernels need no scalar tail;
 * the padding starts zero and stays zero (only kernels write it, and they map zero padding with
 * finite coefficients to zero padding), which keeps sqDist exact.
 *
 * Where WebAssembly SIMD is missing (or the memory cannot be had), the same API runs the JS loops
 * over plain ArrayBuffer-backed slots; `simd` tells which.
 */
export interface ArenaOptions {
  /** Long-lived vectors handed out by alloc(). */
  slots: number
  /** Staging slots for vectors from outside the arena (at least 6: five mix inputs + an output). */
  scratch?: number
  /** Tests and benches: use the JS loops even where SIMD is available. */
  forceJs?: boolean
}

interface Kernels {
  mix2(out: number, n: number, a: number, b: number, w0: number, w1: number): void
  mix3(out: number, n: number, a: number, b: number, c: number, w0: number, w1: number, w2: number): void
  mix4(out: number, n: number, a: number, b: number, c: number, d: number, w0: number, w1: number, w2: number, w3: number): void
  mix5(out: number, n: number, a: number, b: number, c: number, d: number, e: number,
    w0: number, w1: number, w2: number, w3: number, w4: number): void
  momentum(x: number, m: number, g: number, base: number, n: number, beta: number, lr: number, wd: number): void
  sqdist(a: number, b: number, n: number): number
}

let compiled: WebAssembly.Module | null | undefined

/** The kernels module, compiled once; null where WebAssembly or its SIMD proposal is unavailable. */
function kernelModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled
  try {
    // 909 bytes: small enough for a synchronous compile on a browser main thread.
    compiled = typeof WebAssembly === 'object' && WebAssembly.validate(KERNELS_WASM)
      ? new WebAssembly.Module(KERNELS_WASM)
      : null
  } catch {
    compiled = null
  }
  return compiled
}

export function simdAvailable(): boolean {
  return kernelModule() !== null
}

const PAGE = 65536

export class VectorArena {
  /** Elements per vector. */
  readonly n: number
  /** True when the WebAssembly SIMD kernels run; false on the JS fallback. */
  readonly simd: boolean
  private readonly stride: number // floats per slot, multiple of 4 and ≥ n
  private readonly buffer: ArrayBuffer
  private readonly k: Kernels | null
  private readonly slots: number
  private readonly scratch: number
  private allocated = 0

  constructor(n: number, opts: ArenaOptions) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`VectorArena: bad length ${n}`)
    this.n = n
    this.stride = Math.max(4, (n + 3) & ~3)
    this.slots = opts.slots
    this.scratch = Math.max(6, opts.scratch ?? 6)
    const bytes = (this.slots + this.scratch) * this.stride * 4
    const mod = opts.forceJs ? null : kernelModule()
    let kernels: Kernels | null = null
    let buffer: ArrayBuffer | null = null
    if (mod) {
      try {
        const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE) || 1 })
        kernels = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as Kernels
        buffer = memory.buffer
      } catch {
        kernels = null // out of address space for a wasm memory: fall back, do not fail the run
      }
    }
    this.k = kernels
    this.simd = kernels !== null
    // The JS fallback never stages, so it needs no scratch slots.
    this.buffer = buffer ?? new ArrayBuffer(this.slots * this.stride * 4)
  }

  /** A zeroed long-lived vector of length n. Throws when all `slots` are taken. */
  alloc(): Float32Array {
    if (this.allocated >= this.slots) throw new Error(`VectorArena: all ${this.slots} slots in use`)
    return this.view(this.allocated++)
  }

  /** True when `v` is one of this arena's slots (kernels use it in place). */
  owns(v: Float32Array): boolean {
    return v.buffer === this.buffer && v.length === this.n && v.byteOffset % (this.stride * 4) === 0
  }

  /** out = Σ w_k · vecs_k; out may alias one of the first five inputs. Same contract as vector.ts mixInto. */
  mix(out: Float32Array, weights: readonly number[], vecs: readonly Float32Array[]): Float32Array {
    const k = vecs.length
    if (weights.length !== k) throw new Error('VectorArena.mix: weights/vecs length mismatch')
    if (out.length !== this.n) throw new Error('VectorArena.mix: output has the wrong length')
    for (const v of vecs) if (v.length < this.n) throw new Error('VectorArena.mix: input shorter than out')
    const K = this.k
    // One input is a scaled copy: nothing to fuse.
    if (!K || k < 2) return mixInto(out, weights, vecs)
    const n = this.stride
    // Scratch slot 0 holds the result when `out` is not an arena slot; inputs stage from slot 1.
    const dst = this.owns(out) ? out.byteOffset : this.scratchOffset(0)
    // First pass: up to 5 inputs. Later passes fold up to 4 more on top of dst.
    const first = Math.min(5, k)
    const p = this.place(vecs.slice(0, first), 1)
    const w = weights
    if (first === 2) K.mix2(dst, n, p[0], p[1], w[0], w[1])
    else if (first === 3) K.mix3(dst, n, p[0], p[1], p[2], w[0], w[1], w[2])
    else if (first === 4) K.mix4(dst, n, p[0], p[1], p[2], p[3], w[0], w[1], w[2], w[3])
    else K.mix5(dst, n, p[0], p[1], p[2], p[3], p[4], w[0], w[1], w[2], w[3], w[4])
    for (let s = first; s < k; s += 4) {
      const m = Math.min(4, k - s)
      const q = this.place(vecs.slice(s, s + m), 1)
      if (m === 1) K.mix2(dst, n, dst, q[0], 1, w[s])
      else if (m === 2) K.mix3(dst, n, dst, q[0], q[1], 1, w[s], w[s + 1])
      else if (m === 3) K.mix4(dst, n, dst, q[0], q[1], q[2], 1, w[s], w[s + 1], w[s + 2])
      else K.mix5(dst, n, dst, q[0], q[1], q[2], q[3], 1, w[s], w[s + 1], w[s + 2], w[s + 3])
    }
    if (dst !== out.byteOffset || out.buffer !== this.buffer) out.set(this.viewAt(dst))
    return out
  }

  /**
   * Heavy ball with an L2 term, stepping from `base` (default x):
   *   m = β·m + g + λ·x ;  x = base − lr·m
   * base = x is the plain step; base = the mixed model is DPSGD's AWC update (docs/algorithms.md "D-PSGD (AWC and ATC)").
   */
  momentum(x: Float32Array, m: Float32Array, g: Float32Array, beta: number, lr: number, wd: number, base: Float32Array = x): void {
    const nn = this.n
    if (x.length !== nn || m.length !== nn || g.length !== nn || base.length !== nn) {
      throw new Error('VectorArena.momentum: length mismatch')
    }
    const K = this.k
    if (!K) {
      for (let i = 0; i < nn; i++) {
        const mi = beta * m[i] + g[i] + wd * x[i]
        m[i] = mi
        x[i] = base[i] - lr * mi
      }
      return
    }
    const [px, pm, pg, pb] = this.place([x, m, g, base], 0)
    K.momentum(px, pm, pg, pb, this.stride, beta, lr, wd)
    if (!this.owns(x)) x.set(this.viewAt(px))
    if (!this.owns(m)) m.set(this.viewAt(pm))
  }

  /** ‖a − b‖² accumulated in float64. */
  sqDist(a: Float32Array, b: Float32Array): number {
    const K = this.k
    if (!K || a.length !== this.n || b.length !== this.n) return sqDist(a, b)
    const [pa, pb] = this.place([a, b], 0)
    return K.sqdist(pa, pb, this.stride)
  }

  /**
   * Byte offsets the kernels can read `vecs` at: arena slots in place, anything else copied into
   * scratch slots from `firstScratch` on (the same outside vector is copied once).
   */
  private place(vecs: readonly Float32Array[], firstScratch: number): number[] {
    const out: number[] = []
    const staged = new Map<Float32Array, number>()
    let next = firstScratch
    for (const v of vecs) {
      if (this.owns(v)) {
        out.push(v.byteOffset)
        continue
      }
      let off = staged.get(v)
      if (off === undefined) {
        if (next >= this.scratch) throw new Error('VectorArena: out of scratch slots')
        off = this.scratchOffset(next++)
        const dst = this.viewAt(off)
        dst.set(v.length === this.n ? v : v.subarray(0, this.n))
        staged.set(v, off)
      }
      out.push(off)
    }
    return out
  }

  private scratchOffset(i: number): number {
    return (this.slots + i) * this.stride * 4
  }

  private view(slot: number): Float32Array {
    return new Float32Array(this.buffer, slot * this.stride * 4, this.n)
  }

  private viewAt(byteOffset: number): Float32Array {
    return new Float32Array(this.buffer, byteOffset, this.n)
  }
}
