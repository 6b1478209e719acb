import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../../shared/config'
import { DATASET_SHAPES, forwardMacsPerExample, modelLayout } from '../../shared/model-shapes'
import { autoComputeThread, MAIN_THREAD_MAX_MACS } from './node-platform'

const cfg = (over: Record<string, unknown>) => {
  const r = parseRoomConfig(over)
  if (!r.ok) throw new Error(r.error)
  return r.config
}

describe('autoComputeThread: where a Node volunteer trains by default', () => {
  it('keeps small gradients on the main thread and puts large ones on a worker', () => {
    // The default room (mlp on MNIST, batch 32) and the benchmarks' synthetic mlp: main thread.
    expect(autoComputeThread(cfg({ model: 'mlp', dataset: 'mnist', batchSize: 32 }))).toBe('main')
    expect(autoComputeThread(cfg({ model: 'mlp', dataset: 'synthetic', batchSize: 32 }))).toBe('main')
    // The cnn and the deep mlp at batch 32, and the mlp at a large batch: a worker.
    expect(autoComputeThread(cfg({ model: 'cnn', dataset: 'mnist', batchSize: 32 }))).toBe('worker')
    expect(autoComputeThread(cfg({ model: 'deep-mlp', dataset: 'fashion-mnist', batchSize: 32 }))).toBe('worker')
    expect(autoComputeThread(cfg({ model: 'mlp', dataset: 'mnist', batchSize: 512 }))).toBe('worker')
  })

  it('estimates dense layers as in × out and counts the cnn\'s convolutions on top of its dense layers', () => {
    const mnist = DATASET_SHAPES.mnist
    // mlp 784-128-10: the weight matrices are the multiply-accumulates of one example.
    const mlp = modelLayout('mlp', 'mnist')
    if (!mlp.ok) throw new Error(mlp.error)
    const mlpBiases = 128 + 10
    expect(forwardMacsPerExample('mlp', mnist)).toBe(mlp.paramCount - mlpBiases)
    // The cnn has fewer parameters than the mlp but far more work per example (its convolutions
    // reuse each weight at every pixel): the estimate must say so, or auto would pick wrong.
    const cnn = modelLayout('cnn', 'mnist')
    if (!cnn.ok) throw new Error(cnn.error)
    expect(cnn.paramCount).toBeLessThan(mlp.paramCount)
    expect(forwardMacsPerExample('cnn', mnist)).toBeGreaterThan(3 * forwardMacsPerExample('mlp', mnist))
    expect(forwardMacsPerExample('cnn', mnist) * 32).toBeGreaterThan(MAIN_THREAD_MAX_MACS)
  })
})
