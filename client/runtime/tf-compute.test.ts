import * as tf from '@tensorflow/tfjs'
import { beforeAll, describe, expect, it } from 'vitest'
import type { Dataset } from '../../shared/data/format'
import { makeSynthetic } from '../../shared/data/synthetic'
import { buildModel, initParams, schemaHashOf, type ModelSpec } from './models'
import { setupNodeBackend } from './node-backend'
import { TfCompute, uploadDataset } from './tf-compute'

/** Tiny linear softmax model 3→2 (8 params) so finite differences are cheap and exact-ish. */
function tinySpec(): ModelSpec {
  const params = [
    { name: 'w', shape: [3, 2], fanIn: 3, gain: 2 },
    { name: 'b', shape: [2], fanIn: 0, gain: 0 },
  ]
  return {
    name: 'mlp',
    features: 3,
    numClasses: 2,
    params,
    paramCount: 8,
    schemaHash: schemaHashOf('tiny', params),
    forward: (p, x) => tf.add(tf.matMul(x, p[0] as tf.Tensor2D), p[1]) as tf.Tensor2D,
  }
}

function tinyData(): Dataset {
  // 4 examples, batch = whole set, so every gradient() call sees the same batch.
  const x = Float32Array.from([0.5, -1, 2, 1, 0.25, -0.5, -1.5, 0.75, 0.1, 0.3, 0.3, 0.3])
  return { count: 4, rows: 1, cols: 3, numClasses: 2, dtype: 'float32', x, y: Uint8Array.from([0, 1, 1, 0]) }
}

/** Host reference: mean softmax cross-entropy of the tiny model in float64. */
function hostLoss(p: Float64Array | Float32Array, d: Dataset): number {
  let total = 0
  for (let n = 0; n < d.count; n++) {
    const z = [0, 1].map((j) => p[6 + j] + [0, 1, 2].reduce((s, k) => s + d.x[n * 3 + k] * p[k * 2 + j], 0))
    const m = Math.max(...z)
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0))
    total += lse - z[d.y[n]]
  }
  return total / d.count
}

beforeAll(async () => {
  await setupNodeBackend('wasm')
})

describe('TfCompute', () => {
  it('gradient matches central finite differences on a tiny model', async () => {
    const c = new TfCompute({ model: tinySpec(), train: tinyData(), batchSize: 4, seed: 3 })
    const p = await c.readParams()
    const { grad, loss, samples } = await c.gradient()
    expect(samples).toBe(4)
    expect(loss).toBeCloseTo(hostLoss(p, tinyData()), 5)
    const h = 1e-4
    for (let i = 0; i < 8; i++) {
      const a = Float64Array.from(p)
      const b = Float64Array.from(p)
      a[i] += h
      b[i] -= h
      const fd = (hostLoss(a, tinyData()) - hostLoss(b, tinyData())) / (2 * h)
      expect(Math.abs(grad[i] - fd)).toBeLessThan(1e-3)
    }
    c.dispose()
  })

  it('AdamW step matches the hand-derived value (decoupled decay)', async () => {
    const c = new TfCompute({ model: tinySpec(), train: tinyData(), batchSize: 4, seed: 5 })
    const x0 = await c.readParams()
    const { grad } = await c.gradient()
    const lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.5
    await c.localStep({ optimizer: 'adamw', lr, beta1: b1, beta2: b2, eps, weightDecay: wd })
    const x1 = await c.readParams()
    // t=1: m = (1-β1)g, v = (1-β2)g², m̂ = g, v̂ = g² → update = g/(|g|+ε) ≈ sign(g);
    // x1 = x0 − lr·(m̂/(√v̂+ε) + wd·x0). Decay is NOT fed through m/v (that would be Adam+L2).
    for (let i = 0; i < 8; i++) {
      const expected = x0[i] - lr * (grad[i] / (Math.abs(grad[i]) + eps) + wd * x0[i])
      expect(x1[i]).toBeCloseTo(expected, 5)
    }
    const st = await c.readOptimizerState()
    expect(st.length).toBe(3)
    expect(st[2][0]).toBe(1)
    for (let i = 0; i < 8; i++) {
      expect(st[0][i]).toBeCloseTo((1 - b1) * grad[i], 6)
      expect(st[1][i]).toBeCloseTo((1 - b2) * grad[i] * grad[i], 6)
    }
    c.dispose()
  })

  it('SGD momentum follows m = βm + g + λx, x -= γm', async () => {
    const c = new TfCompute({ model: tinySpec(), train: tinyData(), batchSize: 4, seed: 6 })
    const x0 = await c.readParams()
    const g0 = (await c.gradient()).grad
    await c.localStep({ optimizer: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0.01 })
    const x1 = await c.readParams()
    const m1 = x0.map((x, i) => g0[i] + 0.01 * x)
    for (let i = 0; i < 8; i++) expect(x1[i]).toBeCloseTo(x0[i] - 0.1 * m1[i], 6)
    const g1 = (await c.gradient()).grad
    await c.localStep({ optimizer: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0.01 })
    const x2 = await c.readParams()
    for (let i = 0; i < 8; i++) {
      const m2 = 0.9 * m1[i] + g1[i] + 0.01 * x1[i]
      expect(x2[i]).toBeCloseTo(x1[i] - 0.1 * m2, 5)
    }
    c.dispose()
  })

  it('localStep, gradient, evaluate and read/write do not leak tensors', async () => {
    const { train, test } = makeSynthetic({ seed: 1, train: 512, test: 256 })
    const before = tf.memory().numTensors
    const c = new TfCompute({ model: 'mlp', train, batchSize: 32, seed: 1 })
    const t = uploadDataset(test)
    await c.localStep({ optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 })
    await c.localStep({ optimizer: 'adamw', lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
    const steady = tf.memory().numTensors
    for (let i = 0; i < 5; i++) {
      await c.localStep({ optimizer: 'adamw', lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
      await c.gradient()
      const p = await c.readParams()
      await c.writeParams(p)
      await c.evaluate(t)
      await c.evaluate(t, p)
      await c.writeOptimizerState(await c.readOptimizerState())
    }
    expect(tf.memory().numTensors).toBe(steady)
    c.dispose()
    t.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })

  it('writeParams rejects NaN, Inf and wrong length and changes nothing', async () => {
    const c = new TfCompute({ model: tinySpec(), train: tinyData(), batchSize: 4, seed: 7 })
    const p = await c.readParams()
    const bad = p.slice()
    bad[3] = NaN
    await expect(c.writeParams(bad)).rejects.toThrow(/non-finite/)
    bad[3] = Infinity
    await expect(c.writeParams(bad)).rejects.toThrow(/non-finite/)
    await expect(c.writeParams(new Float32Array(7))).rejects.toThrow(/7 values/)
    await expect(c.writeOptimizerState([new Float32Array(3)])).rejects.toThrow()
    expect(Array.from(await c.readParams())).toEqual(Array.from(p))
    const q = p.map((v) => v + 1)
    await c.writeParams(q)
    expect(Array.from(await c.readParams())).toEqual(Array.from(q))
    c.dispose()
  })

  it('trains the synthetic task and evaluates given params without touching the model', async () => {
    const { train, test } = makeSynthetic({ seed: 2 })
    const c = new TfCompute({ model: 'mlp', train, batchSize: 64, seed: 2, readLossEvery: 1000 })
    const t = uploadDataset(test)
    const x0 = await c.readParams()
    const before = await c.evaluate(t)
    for (let i = 0; i < 300; i++) await c.localStep({ optimizer: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 })
    const after = await c.evaluate(t)
    expect(after.loss).toBeLessThan(before.loss)
    expect(after.accuracy).toBeGreaterThan(before.accuracy + 0.2)
    const again = await c.evaluate(t, x0)
    expect(again.loss).toBeCloseTo(before.loss, 4)
    expect((await c.evaluate(t)).loss).toBeCloseTo(after.loss, 5)
    c.dispose()
    t.dispose()
  })

  it('models: param counts, deterministic init, distinct schema hashes', () => {
    const img = { rows: 28, cols: 28, numClasses: 10 }
    const mlp = buildModel('mlp', img)
    expect(mlp.paramCount).toBe(784 * 128 + 128 + 128 * 10 + 10)
    expect(buildModel('mlp', { rows: 1, cols: 32, numClasses: 10 }).paramCount).toBe(32 * 128 + 128 + 1290)
    expect(buildModel('deep-mlp', img).paramCount).toBe(784 * 256 + 256 + 3 * (256 * 256 + 256) + 2570)
    expect(buildModel('deep-mlp', { rows: 1, cols: 32, numClasses: 10 }).params.length).toBe(14)
    const cnn = buildModel('cnn', img)
    const hashes = new Set([mlp.schemaHash, cnn.schemaHash, buildModel('deep-mlp', img).schemaHash])
    expect(hashes.size).toBe(3)
    expect(() => buildModel('cnn', { rows: 1, cols: 32, numClasses: 10 })).toThrow(/28x28/)
    expect(Array.from(initParams(cnn, 4))).toEqual(Array.from(initParams(cnn, 4)))
    expect(initParams(cnn, 4)[0]).not.toBe(initParams(cnn, 5)[0])
  })

  it('cnn computes a gradient of the right size', async () => {
    const d: Dataset = {
      count: 8, rows: 28, cols: 28, numClasses: 10, dtype: 'uint8',
      x: Uint8Array.from({ length: 8 * 784 }, (_, i) => (i * 7) % 256), y: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]),
    }
    const c = new TfCompute({ model: 'cnn', train: d, batchSize: 4, seed: 1 })
    const g = await c.gradient()
    expect(g.grad.length).toBe(c.paramCount)
    expect(g.grad.every(Number.isFinite)).toBe(true)
    c.dispose()
  })
})

describe('cnn building blocks', () => {
  /** The cnn written with tfjs's own conv2d / maxPool (their autodiff gradients): what models.ts must equal. */
  const referenceCnn = (q: tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D => {
    const img = tf.reshape(x, [-1, 28, 28, 1]) as tf.Tensor4D
    let a = tf.maxPool(tf.relu(tf.add(tf.conv2d(img, q[0] as tf.Tensor4D, 1, 'same'), q[1])) as tf.Tensor4D, 2, 2, 'valid')
    a = tf.maxPool(tf.relu(tf.add(tf.conv2d(a, q[2] as tf.Tensor4D, 1, 'same'), q[3])) as tf.Tensor4D, 2, 2, 'valid')
    const h = tf.relu(tf.add(tf.matMul(tf.reshape(a, [-1, 784]) as tf.Tensor2D, q[4] as tf.Tensor2D), q[5])) as tf.Tensor2D
    return tf.add(tf.matMul(h, q[6] as tf.Tensor2D), q[7]) as tf.Tensor2D
  }

  it('cnn forward equals a tf.conv2d / tf.maxPool reference', async () => {
    await setupNodeBackend('cpu')
    const spec = buildModel('cnn', { rows: 28, cols: 28, numClasses: 10 })
    const p = initParams(spec, 9)
    const d: Dataset = {
      count: 2, rows: 28, cols: 28, numClasses: 10, dtype: 'uint8',
      x: Uint8Array.from({ length: 2 * 784 }, (_, i) => (i * 13) % 256), y: Uint8Array.from([1, 2]),
    }
    const { unflatten } = await import('./models')
    const [ours, ref] = tf.tidy(() => {
      const ps = unflatten(spec, p)
      const x = tf.div(tf.tensor2d(Float32Array.from(d.x), [2, 784]), 255) as tf.Tensor2D
      return [spec.forward(ps, x), referenceCnn(ps, x)]
    })
    const [o, r] = [await ours.data(), await ref.data()]
    for (let i = 0; i < o.length; i++) expect(o[i]).toBeCloseTo(r[i], 4)
    ours.dispose()
    ref.dispose()
    await setupNodeBackend('wasm')
  })

  // The conv's gradient is hand-built from forward convolutions (models.ts): check it, and the
  // whole cnn gradient through it, against tfjs's own conv2d/maxPool gradients on the cpu
  // backend, and run it on wasm too (which has no Conv2DBackpropFilter, the reason it exists).
  it('cnn gradient equals the tf.conv2d / tf.maxPool autodiff gradient, on cpu and on wasm', async () => {
    const spec = buildModel('cnn', { rows: 28, cols: 28, numClasses: 10 })
    const p = initParams(spec, 11)
    const n = 3
    const xs = Float32Array.from({ length: n * 784 }, (_, i) => ((i * 13) % 256) / 255)
    const labels = [1, 7, 4]
    const { unflatten } = await import('./models')
    const gradsOf = (reference: boolean): Float32Array[] => tf.tidy(() => {
      const ps = unflatten(spec, p)
      const x = tf.tensor2d(xs, [n, 784])
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10)
      const loss = (...q: tf.Tensor[]) => tf.losses.softmaxCrossEntropy(y, reference ? referenceCnn(q, x) : spec.forward(q, x)) as tf.Scalar
      return tf.grads(loss)(ps).map((g) => g.dataSync() as Float32Array)
    })
    await setupNodeBackend('cpu')
    const ref = gradsOf(true)
    const cpu = gradsOf(false)
    await setupNodeBackend('wasm')
    expect(tf.getBackend()).toBe('wasm')
    const before = tf.memory().numTensors
    const wasm = gradsOf(false)
    expect(tf.memory().numTensors).toBe(before)
    for (const ours of [cpu, wasm]) {
      expect(ours.map((g) => g.length)).toEqual(ref.map((g) => g.length))
      for (let k = 0; k < ref.length; k++) {
        const scale = Math.max(...ref[k].map(Math.abs))
        expect(scale).toBeGreaterThan(0)
        for (let i = 0; i < ref[k].length; i++) expect(Math.abs(ours[k][i] - ref[k][i])).toBeLessThan(1e-4 * scale + 1e-7)
      }
    }
  })
})
