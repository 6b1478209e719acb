/**
 * Pure Float32Array helpers for the algorithms' host-side math. Plain indexed loops (the fastest
 * form in V8 for typed arrays); functions that write take the output as an argument so hot paths
 * can reuse buffers instead of allocating per step.
 */

/** y += a·x (in place). */
export function axpy(y: Float32Array, a: number, x: Float32Array): Float32Array {
  const n = y.length
  for (let i = 0; i < n; i++) y[i] += a * x[i]
  return y
}

/** x *= a (in place). */
export function scale(x: Float32Array, a: number): Float32Array {
  const n = x.length
  for (let i = 0; i < n; i++) x[i] *= a
  return x
}

/** out = Σ w_k · vecs_k. `out` may alias one of the inputs only if it is vecs[0]. */
export function weightedMix(out: Float32Array, weights: readonly number[], vecs: readonly Float32Array[]): Float32Array {
  if (weights.length !== vecs.length) throw new Error('weightedMix: weights/vecs length mismatch')
  const n = out.length
  if (vecs.length === 0) return out.fill(0)
  const w0 = weights[0]
  const v0 = vecs[0]
  for (let i = 0; i < n; i++) out[i] = w0 * v0[i]
  for (let k = 1; k < vecs.length; k++) {
    const w = weights[k]
    const v = vecs[k]
    for (let i = 0; i < n; i++) out[i] += w * v[i]
  }
  return out
}

/** out = mean of vecs. */
export function mean(out: Float32Array, vecs: readonly Float32Array[]): Float32Array {
  return weightedMix(out, vecs.map(() => 1 / vecs.length), vecs)
}

/** ||a − b||² accumulated in float64. */
export function sqDist(a: Float32Array, b: Float32Array): number {
  let s = 0
  const n = a.length
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i]
    s += d * d
  }
  return s
}

/** ||a||² accumulated in float64. */
export function sqNorm(a: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * a[i]
  return s
}

/** True when every element is finite (no NaN/±Inf). */
export function allFinite(x: Float32Array): boolean {
  const n = x.length
  for (let i = 0; i < n; i++) {
    // x - x is NaN for ±Inf and NaN, 0 otherwise: one branch-free test per element.
    if (x[i] - x[i] !== 0) return false
  }
  return true
}

/** Validates a payload that is about to enter a model: right length and all finite. */
export function isValidVector(x: unknown, length: number): x is Float32Array {
  return x instanceof Float32Array && x.length === length && allFinite(x)
}

export function copy(x: Float32Array): Float32Array {
  return new Float32Array(x)
}

/** Max-abs difference (tests and diagnostics). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

/** Concatenates vectors into one (for single-message payloads). */
export function concat(parts: readonly Float32Array[]): Float32Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Float32Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
