import * as tf from '@tensorflow/tfjs'
import type {
  Compute,
  GradientResult,
  LocalStepOptions,
  LocalStepResult,
} from '../../shared/algorithms/types'
import type { ModelName } from '../../shared/config'
import { featuresAsFloat32, featuresOf, type Dataset } from '../../shared/data/format'
import { Rng } from '../../shared/data/rng'
import { buildModel, flattenTensors, initParams, sizeOf, unflatten, type ModelSpec } from './models'

/** A dataset resident on the device: features [n, features] float32, labels [n] int32. */
export interface DeviceData {
  readonly count: number
  readonly xs: tf.Tensor2D
  readonly ys: tf.Tensor1D
  dispose(): void
}

export function uploadDataset(d: Dataset): DeviceData {
  if (d.count === 0) throw new Error('uploadDataset: empty dataset')
  const xs = tf.tensor2d(featuresAsFloat32(d), [d.count, featuresOf(d)], 'float32')
  const ys = tf.tensor1d(Int32Array.from(d.y), 'int32')
  return { count: d.count, xs, ys, dispose: () => (xs.dispose(), ys.dispose()) }
}

export interface TfComputeOptions {
  /** Model name (built for the dataset's shape) or an explicit spec (tests use tiny ones). */
  model: ModelName | ModelSpec
  /** This peer's training shard (host copy; uploaded once). */
  train: Dataset
  batchSize: number
  /** Seeds the initial weights (same on every peer) and this peer's minibatch order. */
  seed: number
  /** Extra seed mixed into the minibatch order only (e.g. the peer index), so peers differ. */
  streamSeed?: number
  /** Initial parameters; default He init from `seed`. */
  initial?: Float32Array
  /**
   * localStep reads the loss back every this many steps and returns NaN otherwise. A read-back
   * is a device→host sync; on webgpu skipping it keeps the queue full. Default 1 (always).
   */
  readLossEvery?: number
}

export interface EvalResult {
  loss: number
  accuracy: number
}

type OptKind = 'none' | 'sgd' | 'adamw'

/**
 * The tfjs implementation of the Compute seam: parameters live in tf.Variables on the current
 * backend, local optimizer steps run entirely on the device, and only gradient()/readParams()/
 * evaluate() copy data to the host (always with `await t.data()`, never dataSync).
 */
export class TfCompute implements Compute {
  readonly spec: ModelSpec
  readonly paramCount: number
  readonly schemaHash: string
  readonly batchSize: number
  private readonly vars: tf.Variable[]
  private readonly data: DeviceData
  private readonly rng: Rng
  private order: Uint32Array = new Uint32Array(0)
  private cursor = 0
  private optKind: OptKind = 'none'
  private slots1: tf.Variable[] = []
  private slots2: tf.Variable[] = []
  private adamT = 0
  private steps = 0
  private readonly readLossEvery: number
  private disposed = false

  constructor(opts: TfComputeOptions) {
    const shape = { rows: opts.train.rows, cols: opts.train.cols, numClasses: opts.train.numClasses }
    this.spec = typeof opts.model === 'string' ? buildModel(opts.model, shape) : opts.model
    if (this.spec.features !== featuresOf(opts.train))
      throw new Error(`model expects ${this.spec.features} features, data has ${featuresOf(opts.train)}`)
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`bad batchSize ${opts.batchSize}`)
    this.paramCount = this.spec.paramCount
    this.schemaHash = this.spec.schemaHash
    this.batchSize = Math.min(opts.batchSize, opts.train.count)
    this.readLossEvery = Math.max(1, Math.floor(opts.readLossEvery ?? 1))
    this.rng = new Rng((opts.seed * 0x9e3779b1) ^ ((opts.streamSeed ?? 0) + 0x3c6ef372))
    const init = opts.initial ?? initParams(this.spec, opts.seed)
    checkParams(init, this.paramCount)
    this.data = uploadDataset(opts.train)
    this.vars = tf.tidy(() => unflatten(this.spec, init).map((t) => tf.variable(t, true)))
  }

  /** Next minibatch indices: seeded reshuffle every epoch of the shard. */
  private nextIndices(): Int32Array {
    const b = this.batchSize
    const idx = new Int32Array(b)
    for (let k = 0; k < b; k++) {
      if (this.cursor >= this.order.length) {
        this.order = this.rng.permutation(this.data.count)
        this.cursor = 0
      }
      idx[k] = this.order[this.cursor++]
    }
    return idx
  }

  private lossOn(params: tf.Tensor[], x: tf.Tensor2D, y: tf.Tensor1D): tf.Scalar {
    const logits = this.spec.forward(params, x)
    const logp = tf.logSoftmax(logits)
    const picked = tf.sum(tf.mul(logp, tf.oneHot(y, this.spec.numClasses)), 1)
    return tf.neg(tf.mean(picked)) as tf.Scalar
  }

  /** Loss and per-variable gradients on the next minibatch (inside the caller's tidy). */
  private lossAndGrads(): { value: tf.Scalar; grads: tf.Tensor[] } {
    const idx = tf.tensor1d(this.nextIndices(), 'int32')
    const x = tf.gather(this.data.xs, idx) as tf.Tensor2D
    const y = tf.gather(this.data.ys, idx) as tf.Tensor1D
    const { value, grads } = tf.variableGrads(() => this.lossOn(this.vars, x, y), this.vars)
    return { value, grads: this.vars.map((v) => grads[v.name]) }
  }

  async gradient(): Promise<GradientResult> {
    this.live()
    const packed = tf.tidy(() => {
      const { value, grads } = this.lossAndGrads()
      return tf.concat([flattenTensors(grads), tf.reshape(value, [1])])
    })
    try {
      const all = (await packed.data()) as Float32Array
      return { grad: all.slice(0, this.paramCount), loss: all[this.paramCount], samples: this.batchSize }
    } finally {
      packed.dispose()
    }
  }

  async localStep(opts: LocalStepOptions): Promise<LocalStepResult> {
    this.live()
    checkStepOptions(opts)
    const kind: OptKind = opts.optimizer === 'adamw' ? 'adamw' : opts.momentum > 0 ? 'sgd' : 'none'
    if (kind !== this.optKind) this.switchOptimizer(kind)
    const loss = tf.tidy(() => {
      const { value, grads } = this.lossAndGrads()
      const lr = tf.scalar(opts.lr)
      // Scalars once per step (not per variable): each is a tensor allocation and upload.
      const wd = opts.weightDecay > 0 ? tf.scalar(opts.weightDecay) : null
      if (opts.optimizer === 'sgd') {
        // Heavy ball as in docs/algorithms.md "D-PSGD (AWC and ATC)": m = βm + (g + λx), x -= γm (coupled weight decay).
        const beta = kind === 'sgd' ? tf.scalar(opts.momentum) : null
        this.vars.forEach((v, i) => {
          const g = wd ? tf.add(grads[i], tf.mul(wd, v)) : grads[i]
          let d = g
          if (beta) {
            const m = tf.add(tf.mul(beta, this.slots1[i]), g)
            this.slots1[i].assign(m)
            d = m
          }
          v.assign(tf.sub(v, tf.mul(lr, d)))
        })
      } else {
        // AdamW (Loshchilov & Hutter): moments of g only; decay applied to x directly, not fed to m/v.
        this.adamT++
        const c1 = tf.scalar(1 / (1 - Math.pow(opts.beta1, this.adamT)))
        const c2 = tf.scalar(1 / (1 - Math.pow(opts.beta2, this.adamT)))
        const b1 = tf.scalar(opts.beta1)
        const b2 = tf.scalar(opts.beta2)
        const omb1 = tf.scalar(1 - opts.beta1)
        const omb2 = tf.scalar(1 - opts.beta2)
        const eps = tf.scalar(opts.eps)
        this.vars.forEach((v, i) => {
          const g = grads[i]
          const m = tf.add(tf.mul(b1, this.slots1[i]), tf.mul(omb1, g))
          const s = tf.add(tf.mul(b2, this.slots2[i]), tf.mul(omb2, tf.square(g)))
          this.slots1[i].assign(m)
          this.slots2[i].assign(s)
          const upd = tf.div(tf.mul(m, c1), tf.add(tf.sqrt(tf.mul(s, c2)), eps))
          v.assign(tf.sub(v, tf.mul(lr, wd ? tf.add(upd, tf.mul(wd, v)) : upd)))
        })
      }
      return value
    })
    this.steps++
    try {
      if (this.steps % this.readLossEvery !== 0) return { loss: NaN, samples: this.batchSize }
      const l = (await loss.data())[0]
      return { loss: l, samples: this.batchSize }
    } finally {
      loss.dispose()
    }
  }

  private switchOptimizer(kind: OptKind): void {
    this.disposeSlots()
    this.optKind = kind
    this.adamT = 0
    const zeros = () => this.vars.map((v) => tf.variable(tf.zerosLike(v), false))
    if (kind === 'sgd' || kind === 'adamw') this.slots1 = tf.tidy(zeros)
    if (kind === 'adamw') this.slots2 = tf.tidy(zeros)
  }

  private disposeSlots(): void {
    for (const s of [...this.slots1, ...this.slots2]) s.dispose()
    this.slots1 = []
    this.slots2 = []
  }

  async readParams(): Promise<Float32Array> {
    this.live()
    return readFlat(this.vars)
  }

  async writeParams(p: Float32Array): Promise<void> {
    this.live()
    checkParams(p, this.paramCount)
    assignFlat(this.spec, this.vars, p)
  }

  /**
   * sgd with momentum: [m]; adamw: [m, v, [t]] (t = bias-correction step count, so averaging
   * state element-wise across peers that share t keeps it). [] when no state exists.
   */
  async readOptimizerState(): Promise<Float32Array[]> {
    this.live()
    if (this.optKind === 'sgd') return [await readFlat(this.slots1)]
    if (this.optKind === 'adamw') return [await readFlat(this.slots1), await readFlat(this.slots2), Float32Array.of(this.adamT)]
    return []
  }

  async writeOptimizerState(state: Float32Array[]): Promise<void> {
    this.live()
    if (state.length === 0) return this.resetOptimizer()
    if (state.length !== 1 && state.length !== 3) throw new Error(`optimizer state: expected 0, 1 or 3 arrays, got ${state.length}`)
    checkParams(state[0], this.paramCount)
    if (state.length === 3) {
      checkParams(state[1], this.paramCount)
      const t = state[2]
      if (t.length !== 1 || !Number.isInteger(t[0]) || t[0] < 0) throw new Error('optimizer state: bad Adam step count')
      if (state[1].some((x) => x < 0)) throw new Error('optimizer state: negative Adam second moment')
    }
    const kind: OptKind = state.length === 1 ? 'sgd' : 'adamw'
    if (kind !== this.optKind) this.switchOptimizer(kind)
    assignFlat(this.spec, this.slots1, state[0])
    if (kind === 'adamw') {
      assignFlat(this.spec, this.slots2, state[1])
      this.adamT = state[2][0]
    }
  }

  resetOptimizer(): void {
    this.disposeSlots()
    this.optKind = 'none'
    this.adamT = 0
  }

  /** Loss and accuracy on `test` of the given params (without touching the model) or the current ones. */
  async evaluate(test: DeviceData, params?: Float32Array, chunk = 2048): Promise<EvalResult> {
    this.live()
    if (params) checkParams(params, this.paramCount)
    const ps = params ? tf.tidy(() => unflatten(this.spec, params)) : this.vars
    const parts: tf.Tensor[] = []
    try {
      for (let start = 0; start < test.count; start += chunk) {
        const n = Math.min(chunk, test.count - start)
        parts.push(
          tf.tidy(() => {
            const x = tf.slice(test.xs, [start, 0], [n, -1]) as tf.Tensor2D
            const y = tf.slice(test.ys, [start], [n]) as tf.Tensor1D
            const logits = this.spec.forward(ps, x)
            const logp = tf.logSoftmax(logits)
            const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(y, this.spec.numClasses))))
            const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'))
            return tf.stack([nll, correct])
          }),
        )
      }
      const sums = tf.tidy(() => tf.addN(parts))
      const [nll, correct] = await sums.data()
      sums.dispose()
      return { loss: nll / test.count, accuracy: correct / test.count }
    } finally {
      for (const t of parts) t.dispose()
      if (params) for (const t of ps) t.dispose()
    }
  }

  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.disposeSlots()
    for (const v of this.vars) v.dispose()
    this.data.dispose()
  }

  private live(): void {
    if (this.disposed) throw new Error('TfCompute used after dispose()')
  }
}

function checkParams(p: Float32Array, n: number): void {
  if (!(p instanceof Float32Array)) throw new Error('params must be a Float32Array')
  if (p.length !== n) throw new Error(`params: ${p.length} values, model has ${n}`)
  for (let i = 0; i < p.length; i++) if (!Number.isFinite(p[i])) throw new Error(`params: non-finite value at ${i}`)
}

function checkStepOptions(o: LocalStepOptions): void {
  const fin = (v: number, name: string, min = 0) => {
    if (!Number.isFinite(v) || v < min) throw new Error(`localStep: bad ${name} ${v}`)
  }
  fin(o.lr, 'lr')
  fin(o.weightDecay, 'weightDecay')
  if (o.optimizer === 'sgd') fin(o.momentum, 'momentum')
  else {
    fin(o.eps, 'eps')
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) throw new Error('localStep: Adam betas must be in [0, 1)')
  }
}

async function readFlat(ts: tf.Tensor[]): Promise<Float32Array> {
  const flat = tf.tidy(() => flattenTensors(ts))
  try {
    return new Float32Array(await flat.data())
  } finally {
    flat.dispose()
  }
}

function assignFlat(spec: ModelSpec, vars: tf.Variable[], p: Float32Array): void {
  tf.tidy(() => {
    let at = 0
    spec.params.forEach((s, i) => {
      const n = sizeOf(s.shape)
      vars[i].assign(tf.tensor(p.subarray(at, at + n), s.shape, 'float32'))
      at += n
    })
  })
}
