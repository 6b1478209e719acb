import * as tf from '@tensorflow/tfjs'
import { beforeAll, describe, expect, it } from 'vitest'
import { DATASETS, MODELS } from '../../shared/config'
import { makeSynthetic } from '../../shared/data/synthetic'
import { Rng } from '../../shared/data/rng'
import { DATASET_SHAPES, modelLayout, modelParamShapes, paramCountOf, tfjsArtifact } from '../../shared/model-shapes'
import { buildModel, initParams, unflatten } from './models'
import { setupNodeBackend } from './node-backend'

/**
 * The server describes checkpoints with shared/model-shapes.ts (it must not import tfjs); this
 * keeps that description equal to the real models and proves the artifact loads in TensorFlow.js.
 */
describe('shared/model-shapes', () => {
  beforeAll(async () => {
    await setupNodeBackend('cpu')
  })

  it('matches buildModel for every model and dataset', () => {
    let compared = 0
    for (const model of MODELS) {
      for (const dataset of DATASETS) {
        const input = DATASET_SHAPES[dataset]
        let spec
        try {
          spec = buildModel(model, input)
        } catch {
          expect(() => modelParamShapes(model, input)).toThrow()
          continue
        }
        const shapes = modelParamShapes(model, input)
        expect(shapes).toEqual(spec.params.map((p) => ({ name: p.name, shape: p.shape })))
        expect(paramCountOf(shapes)).toBe(spec.paramCount)
        compared++
      }
    }
    expect(compared).toBe(8) // cnn has no synthetic variant
  })

  it('synthetic input shape is what the server serves', () => {
    const { train } = makeSynthetic({ seed: 0 })
    expect(DATASET_SHAPES.synthetic).toEqual({ rows: train.rows, cols: train.cols, numClasses: train.numClasses })
  })

  it('names each layout with the schema hash the models use (the server checks uploads against it)', () => {
    for (const model of MODELS) {
      for (const dataset of DATASETS) {
        const layout = modelLayout(model, dataset)
        if (!layout.ok) continue
        const spec = buildModel(model, DATASET_SHAPES[dataset])
        expect(layout.schemaHash).toBe(spec.schemaHash)
        expect(layout.paramCount).toBe(spec.paramCount)
      }
    }
  })

  // Every model and dataset pair buildModel accepts: the download must be that model, not just
  // tensors of the right shapes.
  it.each([
    ['mlp', 'mnist'], ['deep-mlp', 'fashion-mnist'], ['cnn', 'mnist'], ['mlp', 'synthetic'], ['deep-mlp', 'synthetic'],
  ] as const)('tf.loadLayersModel loads the %s/%s download and predicts what our forward pass computes', async (model, dataset) => {
    const spec = buildModel(model, DATASET_SHAPES[dataset])
    // Init weights plus noise on everything, so biases are non-zero and a swapped or misnamed
    // weight changes the output.
    const rng = new Rng(11)
    const flat = initParams(spec, 7).map((v) => v + 0.05 * rng.normal())
    const made = tfjsArtifact({ model, dataset, params: new Uint8Array(flat.buffer), weightsPath: 'model.weights.bin', generatedBy: 'test', embedWeights: true })
    if (!made.ok) throw new Error(made.error)
    // Round-trip through JSON text, as a downloaded file would.
    const a = JSON.parse(JSON.stringify(made.artifact)) as typeof made.artifact
    expect(a.format).toBe('layers-model')
    expect(a.weightsManifest[0].paths).toEqual(['model.weights.bin'])
    const before = tf.memory().numTensors
    const bin = Uint8Array.from(atob(a.weightData!), (c) => c.charCodeAt(0))
    const loaded = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: a.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'], weightSpecs: a.weightSpecs, weightData: bin.buffer,
    }))
    // Four examples in [0, 1], like the /255 pixels the tabs train on.
    const xs = Float32Array.from({ length: 4 * spec.features }, () => rng.uniform())
    const [got, want] = tf.tidy(() => {
      const x = tf.tensor2d(xs, [4, spec.features])
      const ours = spec.forward(unflatten(spec, flat), x)
      return [loaded.predict(x) as tf.Tensor2D, ours]
    })
    expect(got.shape).toEqual([4, spec.numClasses])
    const g = await got.data()
    const w = await want.data()
    const scale = Math.max(...Array.from(w, Math.abs))
    expect(scale).toBeGreaterThan(0.1) // the comparison below is not between two near-zero outputs
    for (let i = 0; i < w.length; i++) expect(Math.abs(g[i] - w[i])).toBeLessThan(1e-4 * Math.max(1, scale))
    // Same predicted class for every example.
    for (let r = 0; r < 4; r++) {
      const row = (d: ArrayLike<number>) => Array.from({ length: spec.numClasses }, (_, c) => d[r * spec.numClasses + c])
      const argmax = (v: number[]) => v.indexOf(Math.max(...v))
      expect(argmax(row(g))).toBe(argmax(row(w)))
    }
    tf.dispose([got, want])
    loaded.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })

  it('the model.json without embedded weights points at the weights file and loads with it', async () => {
    const spec = buildModel('mlp', DATASET_SHAPES.synthetic)
    const flat = initParams(spec, 3)
    const made = tfjsArtifact({ model: 'mlp', dataset: 'synthetic', params: new Uint8Array(flat.buffer), weightsPath: 'model.weights.bin', generatedBy: 'test' })
    if (!made.ok) throw new Error(made.error)
    expect(made.artifact.weightData).toBeUndefined()
    const manifest = made.artifact.weightsManifest[0]
    expect(manifest.weights.map((w) => w.name)).toEqual(['dense0/kernel', 'dense0/bias', 'out/kernel', 'out/bias'])
    // What tf.loadLayersModel(url) does with the manifest: fetch `paths`, decode in manifest order.
    const loaded = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: made.artifact.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'], weightSpecs: manifest.weights, weightData: flat.buffer,
    }))
    const kernel = loaded.getLayer('dense0').getWeights()[0]
    expect(kernel.shape).toEqual([32, 128])
    expect(Array.from(await kernel.data()).slice(0, 5)).toEqual(Array.from(flat.subarray(0, 5)))
    loaded.dispose()
  })

  it('refuses bytes that are not this model', () => {
    const r = tfjsArtifact({ model: 'mlp', dataset: 'mnist', params: new Uint8Array(12), weightsPath: 'w.bin', generatedBy: 't' })
    expect(r.ok).toBe(false)
    expect(tfjsArtifact({ model: 'cnn', dataset: 'synthetic', params: new Uint8Array(4), weightsPath: 'w.bin', generatedBy: 't' }).ok).toBe(false)
  })
})
