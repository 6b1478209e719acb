import type { Compute, GradientResult, LocalStepOptions, LocalStepResult } from '../algorithms/types'
import { allFinite } from '../math/vector'
import { sleep } from '../transport'
import { Rng } from './random'

/**
 * Pure-JS Compute for heterogeneous least squares, for exact math tests of the algorithms
 * (no tfjs). Peer i owns rows (A_i, b_i) with its own optimum, so local gradients disagree at
 * the global optimum (the "heterogeneity" b² of docs/algorithms.md "Inconsistency bias"). Loss: mean over the
 * minibatch rows of ½(a·x − b)². Minibatches walk the rows cyclically: deterministic.
 */
export interface LsqShard {
  readonly m: number
  readonly d: number
  /** Row-major m×d. */
  readonly A: Float64Array
  readonly b: Float64Array
}

export interface LsqProblem {
  readonly shards: LsqShard[]
  /** Minimiser of the average of the full local losses. */
  readonly xstar: Float64Array
}

/** Solves M y = r (dense, partial pivoting), float64. */
export function solveDense(M: Float64Array, r: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(M)
  const y = Float64Array.from(r)
  for (let c = 0; c < n; c++) {
    let p = c
    for (let i = c + 1; i < n; i++) if (Math.abs(a[i * n + c]) > Math.abs(a[p * n + c])) p = i
    if (p !== c) {
      for (let k = 0; k < n; k++) [a[c * n + k], a[p * n + k]] = [a[p * n + k], a[c * n + k]]
      ;[y[c], y[p]] = [y[p], y[c]]
    }
    for (let i = c + 1; i < n; i++) {
      const f = a[i * n + c] / a[c * n + c]
      if (f === 0) continue
      for (let k = c; k < n; k++) a[i * n + k] -= f * a[c * n + k]
      y[i] -= f * y[c]
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let s = y[c]
    for (let k = c + 1; k < n; k++) s -= a[c * n + k] * y[k]
    y[c] = s / a[c * n + c]
  }
  return y
}

/** Local Hessian (1/m)AᵀA and linear term (1/m)Aᵀb of a shard. */
export function shardQuadratic(s: LsqShard): { H: Float64Array; c: Float64Array } {
  const { m, d, A, b } = s
  const H = new Float64Array(d * d)
  const c = new Float64Array(d)
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < d; i++) {
      const ai = A[r * d + i]
      c[i] += (ai * b[r]) / m
      for (let j = 0; j < d; j++) H[i * d + j] += (ai * A[r * d + j]) / m
    }
  }
  return { H, c }
}

/** Seeded heterogeneous least-squares problem (docs/algorithms.md "Inconsistency bias"). */
export function makeLsqProblem(opts: { n: number; d: number; m: number; seed?: number; spread?: number }): LsqProblem {
  const rng = new Rng(opts.seed ?? 0)
  const { n, d, m } = opts
  const spread = opts.spread ?? 3
  const shards: LsqShard[] = []
  for (let i = 0; i < n; i++) {
    const A = new Float64Array(m * d)
    for (let k = 0; k < A.length; k++) A[k] = rng.gaussian()
    const xi = Array.from({ length: d }, () => rng.gaussian() * spread)
    const b = new Float64Array(m)
    for (let r = 0; r < m; r++) {
      let s = 0
      for (let j = 0; j < d; j++) s += A[r * d + j] * xi[j]
      b[r] = s + 0.1 * rng.gaussian()
    }
    shards.push({ m, d, A, b })
  }
  const Hs = new Float64Array(d * d)
  const cs = new Float64Array(d)
  for (const s of shards) {
    const { H, c } = shardQuadratic(s)
    for (let k = 0; k < H.length; k++) Hs[k] += H[k] / n
    for (let k = 0; k < d; k++) cs[k] += c[k] / n
  }
  return { shards, xstar: solveDense(Hs, cs, d) }
}

export interface LsqComputeOptions {
  /** Rows per minibatch; default: all rows (full gradient). */
  batchSize?: number
  init?: Float32Array
  /** Artificial compute time per gradient (a slow tab). */
  delayMs?: number
}

export class LsqCompute implements Compute {
  readonly paramCount: number
  readonly schemaHash: string
  readonly batchSize: number
  private x: Float32Array
  private pos = 0
  private m1: Float32Array | null = null
  private v: Float32Array | null = null
  private adamT = 0
  gradients = 0

  constructor(private readonly shard: LsqShard, private readonly opts: LsqComputeOptions = {}) {
    this.paramCount = shard.d
    this.schemaHash = `lsq:${shard.d}`
    this.batchSize = Math.min(opts.batchSize ?? shard.m, shard.m)
    this.x = opts.init ? new Float32Array(opts.init) : new Float32Array(shard.d)
  }

  async readParams(): Promise<Float32Array> {
    return new Float32Array(this.x)
  }

  async writeParams(p: Float32Array): Promise<void> {
    if (p.length !== this.paramCount || !allFinite(p)) throw new Error('writeParams: wrong length or non-finite')
    this.x = new Float32Array(p)
  }

  /** Gradient and loss of the next minibatch at x (float64 accumulation). */
  private gradAt(x: Float32Array): GradientResult {
    const { d, A, b, m } = this.shard
    const g = new Float64Array(d)
    let loss = 0
    const bs = this.batchSize
    for (let k = 0; k < bs; k++) {
      const r = (this.pos + k) % m
      let res = -b[r]
      for (let j = 0; j < d; j++) res += A[r * d + j] * x[j]
      loss += 0.5 * res * res
      for (let j = 0; j < d; j++) g[j] += A[r * d + j] * res
    }
    this.pos = (this.pos + bs) % m
    const out = new Float32Array(d)
    for (let j = 0; j < d; j++) out[j] = g[j] / bs
    this.gradients++
    return { grad: out, loss: loss / bs, samples: bs }
  }

  async gradient(): Promise<GradientResult> {
    if (this.opts.delayMs) await sleep(this.opts.delayMs)
    return this.gradAt(this.x)
  }

  async localStep(o: LocalStepOptions): Promise<LocalStepResult> {
    const { grad, loss, samples } = await this.gradient()
    const x = this.x
    const d = x.length
    if (o.optimizer === 'sgd') {
      const m = (this.m1 ??= new Float32Array(d))
      for (let j = 0; j < d; j++) {
        m[j] = o.momentum * m[j] + grad[j] + o.weightDecay * x[j]
        x[j] -= o.lr * m[j]
      }
    } else {
      const m = (this.m1 ??= new Float32Array(d))
      const v = (this.v ??= new Float32Array(d))
      this.adamT++
      const c1 = 1 - o.beta1 ** this.adamT
      const c2 = 1 - o.beta2 ** this.adamT
      for (let j = 0; j < d; j++) {
        m[j] = o.beta1 * m[j] + (1 - o.beta1) * grad[j]
        v[j] = o.beta2 * v[j] + (1 - o.beta2) * grad[j] * grad[j]
        // Decoupled weight decay (AdamW): shrink x independently of the adaptive step.
        x[j] -= o.lr * o.weightDecay * x[j] + (o.lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + o.eps)
      }
    }
    return { loss, samples }
  }

  async readOptimizerState(): Promise<Float32Array[]> {
    if (!this.m1) return []
    if (!this.v) return [new Float32Array(this.m1)]
    return [new Float32Array(this.m1), new Float32Array(this.v), Float32Array.of(this.adamT)]
  }

  async writeOptimizerState(state: Float32Array[]): Promise<void> {
    const d = this.paramCount
    if (state.length === 0) return this.resetOptimizer()
    if (state[0].length !== d || !state.every(allFinite)) throw new Error('writeOptimizerState: bad state')
    this.m1 = new Float32Array(state[0])
    if (state.length >= 2) {
      if (state[1].length !== d) throw new Error('writeOptimizerState: bad v')
      this.v = new Float32Array(state[1])
      this.adamT = state[2]?.[0] ?? 0
    }
  }

  resetOptimizer(): void {
    this.m1 = null
    this.v = null
    this.adamT = 0
  }
}

/**
 * Exact fixed point of DSGD-ATC on least squares, X = W(X − γ∇F(X)) (docs/algorithms.md "Inconsistency bias"), as one
 * dense nd×nd linear system in float64: row (i, a) reads x_ia − Σ_j w_ij (x_j − γ(H_j x_j − c_j))_a = 0.
 * DecentLaM(γ, β) has this fixed point for every β and DmSGD(γ, β) that of γ/(1−β).
 * Returns the network mean x̄.
 */
export function atcFixedPointMean(shards: readonly LsqShard[], W: readonly (readonly number[])[], gamma: number): Float64Array {
  const n = shards.length
  const d = shards[0].d
  const quads = shards.map(shardQuadratic)
  const N = n * d
  const M = new Float64Array(N * N)
  const r = new Float64Array(N)
  for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) {
    const row = i * d + a
    M[row * N + row] += 1
    for (let j = 0; j < n; j++) {
      if (!W[i][j]) continue
      M[row * N + j * d + a] -= W[i][j]
      for (let b = 0; b < d; b++) M[row * N + j * d + b] += W[i][j] * gamma * quads[j].H[a * d + b]
      r[row] += W[i][j] * gamma * quads[j].c[a]
    }
  }
  const X = solveDense(M, r, N)
  const xbar = new Float64Array(d)
  for (let i = 0; i < n; i++) for (let a = 0; a < d; a++) xbar[a] += X[i * d + a] / n
  return xbar
}

/** Minimiser of the average of the shards' full losses. */
export function lsqOptimum(shards: readonly LsqShard[]): Float64Array {
  const d = shards[0].d
  const Hs = new Float64Array(d * d)
  const cs = new Float64Array(d)
  for (const s of shards) {
    const { H, c } = shardQuadratic(s)
    for (let k = 0; k < H.length; k++) Hs[k] += H[k] / shards.length
    for (let k = 0; k < d; k++) cs[k] += c[k] / shards.length
  }
  return solveDense(Hs, cs, d)
}
