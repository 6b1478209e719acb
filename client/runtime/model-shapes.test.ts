import * as tf from '@tensorflow/tfjs'
import { beforeAll, describe, expect, it } from 'vitest'
import { DATASETS, MODELS } from '../../shared/config'
import { makeSynthetic } from '../../shared/data/synthetic'
import { DATASET_SHAPES, modelParamShapes, paramCountOf, tfjsArtifact } from '../../shared/model-shapes'
import { buildModel, initParams } from './models'
import { setupNodeBackend } from './node-backend'

/**
 * The server describes checkpoints with shared/model-shapes.ts (it must not import tfjs); this
 * keeps that description equal to the real models and proves the artifact loads in TensorFlow.js.
 */
describe('shared/model-shapes', () => {
  beforeAll(async () => {
    await setupNodeBackend()
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

  it('produces an artifact tf.io.fromMemory loads into tensors of the right shapes and values', async () => {
    const spec = buildModel('cnn', DATASET_SHAPES.mnist)
    const flat = initParams(spec, 7)
    const made = tfjsArtifact({ model: 'cnn', dataset: 'mnist', params: new Uint8Array(flat.buffer), weightsPath: 'weights.bin', generatedBy: 'test' })
    if (!made.ok) throw new Error(made.error)
    // Round-trip through JSON text, as a downloaded file would.
    const a = JSON.parse(JSON.stringify(made.artifact)) as typeof made.artifact
    expect(a.weightsManifest[0].paths).toEqual(['weights.bin'])
    const bin = Uint8Array.from(atob(a.weightData), (c) => c.charCodeAt(0))
    const handler = tf.io.fromMemory({ modelTopology: a.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'], weightSpecs: a.weightSpecs, weightData: bin.buffer })
    const loaded = await handler.load!()
    const before = tf.memory().numTensors
    const named = tf.io.decodeWeights(loaded.weightData!, loaded.weightSpecs!)
    expect(Object.keys(named)).toEqual(spec.params.map((p) => p.name))
    let at = 0
    for (const p of spec.params) {
      const t = named[p.name]
      expect(t.shape).toEqual(p.shape)
      const got = await t.data()
      const n = got.length
      expect(Array.from(got)).toEqual(Array.from(flat.subarray(at, at + n)))
      at += n
    }
    expect(at).toBe(flat.length)
    tf.dispose(Object.values(named))
    expect(tf.memory().numTensors).toBe(before)
  })

  it('refuses bytes that are not this model', () => {
    const r = tfjsArtifact({ model: 'mlp', dataset: 'mnist', params: new Uint8Array(12), weightsPath: 'w.bin', generatedBy: 't' })
    expect(r.ok).toBe(false)
    expect(tfjsArtifact({ model: 'cnn', dataset: 'synthetic', params: new Uint8Array(4), weightsPath: 'w.bin', generatedBy: 't' }).ok).toBe(false)
  })
})
