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

/**
 * Fused mixing kernel: out = Σ w_k · vecs_k in ONE pass over memory. For 1M-parameter models the
 * multi-pass weightedMix is memory-bound (it re-reads and re-writes `out` once per input); here
 * each input is read once and `out` written once. Up to 5 inputs (self + 4 neighbours) take an
 * unrolled path; more inputs are folded in blocks of 4 on top of the first pass. `out` may alias
 * one of the first five inputs (each element is read before it is written), not a later one:
 * those are read after the first pass has overwritten `out`. Partial sums are kept in float64 and
 * rounded once, so results may differ from weightedMix in the last float32 bit.
 */
export function mixInto(out: Float32Array, weights: readonly number[], vecs: readonly Float32Array[]): Float32Array {
  const k = vecs.length
  if (weights.length !== k) throw new Error('mixInto: weights/vecs length mismatch')
  const n = out.length
  for (const v of vecs) if (v.length < n) throw new Error('mixInto: input shorter than out')
  if (k === 0) return out.fill(0)
  const w0 = weights[0], a = vecs[0]
  if (k === 1) {
    for (let i = 0; i < n; i++) out[i] = w0 * a[i]
    return out
  }
  const w1 = weights[1], b = vecs[1]
  if (k === 2) {
    for (let i = 0; i < n; i++) out[i] = w0 * a[i] + w1 * b[i]
    return out
  }
  const w2 = weights[2], c = vecs[2]
  if (k === 3) {
    for (let i = 0; i < n; i++) out[i] = w0 * a[i] + w1 * b[i] + w2 * c[i]
    return out
  }
  const w3 = weights[3], d = vecs[3]
  if (k === 4) {
    for (let i = 0; i < n; i++) out[i] = w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i]
    return out
  }
  const w4 = weights[4], e = vecs[4]
  for (let i = 0; i < n; i++) out[i] = w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i] + w4 * e[i]
  // Rare: more than 5 inputs (dense graphs). Accumulate the rest 4 at a time.
  for (let s = 5; s < k; s += 4) {
    const m = Math.min(4, k - s)
    const ws = [0, 1, 2, 3].map((j) => (j < m ? weights[s + j] : 0))
    const vs = [0, 1, 2, 3].map((j) => (j < m ? vecs[s + j] : vecs[s]))
    const [p, q, r, t] = vs
    const [wp, wq, wr, wt] = ws
    for (let i = 0; i < n; i++) out[i] += wp * p[i] + wq * q[i] + wr * r[i] + wt * t[i]
  }
  return out
}

/**
 * Fused heavy-ball step in one pass: m = β·m + g ; x −= lr·m. Same math as
 * scale(m, β); axpy(m, 1, g); axpy(x, −lr, m) with a third of the memory traffic; it rounds to
 * float32 once per stored value instead of after each partial result, so it can differ from the
 * three-pass form in the last bit.
 */
export function momentumStep(x: Float32Array, m: Float32Array, g: Float32Array, beta: number, lr: number): void {
  const n = x.length
  if (m.length !== n || g.length !== n) throw new Error('momentumStep: length mismatch')
  for (let i = 0; i < n; i++) {
    const mi = beta * m[i] + g[i]
    m[i] = mi
    x[i] -= lr * mi
  }
}
