import * as tf from '@tensorflow/tfjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeSynthetic } from '../../../shared/data/synthetic'
import { setupNodeBackend } from '../node-backend'
import { spawnTsWorker } from '../node-worker'
import { TfCompute, uploadDataset } from '../tf-compute'
import { WorkerCompute } from './host'
import { nodeComputePort, startNodeWorkerCompute } from './node'

const { train, test } = makeSynthetic({ seed: 4, train: 512, test: 256 })
const init = { model: 'mlp' as const, train, test, batchSize: 32, seed: 7, streamSeed: 2 }
const started: WorkerCompute[] = []
const start = async () => {
  const c = await startNodeWorkerCompute(init)
  started.push(c)
  return c
}

beforeAll(async () => {
  await setupNodeBackend('wasm')
})
afterAll(() => started.forEach((c) => c.dispose()))

describe('WorkerCompute (tfjs model on a worker thread)', () => {
  it('computes exactly what a TfCompute on this thread computes, call for call', async () => {
    const w = await start()
    const local = new TfCompute({ model: 'mlp', train, batchSize: 32, seed: 7, streamSeed: 2 })
    const t = uploadDataset(test)
    expect(w.backend).toBe('wasm')
    expect(w.paramCount).toBe(local.paramCount)
    expect(w.schemaHash).toBe(local.schemaHash)
    expect(w.batchSize).toBe(32)
    expect(await w.readParams()).toEqual(await local.readParams())

    const gw = await w.gradient()
    const gl = await local.gradient()
    expect(gw.grad).toEqual(gl.grad)
    expect(gw.loss).toBe(gl.loss)
    expect(gw.samples).toBe(32)

    const sgd = { optimizer: 'sgd' as const, lr: 0.05, momentum: 0.9, weightDecay: 1e-4 }
    for (let i = 0; i < 3; i++) expect(await w.localStep(sgd)).toEqual(await local.localStep(sgd))
    expect(await w.readParams()).toEqual(await local.readParams())
    expect(await w.readOptimizerState()).toEqual(await local.readOptimizerState())

    // Writes: the caller's array is copied, not moved to the worker.
    const p = (await local.readParams()).map((v) => v * 0.5)
    await w.writeParams(p)
    await local.writeParams(p)
    expect(p.length).toBe(local.paramCount)
    expect(await w.readParams()).toEqual(p)
    const m = (await local.readOptimizerState()).map((s) => s.map((v) => v * 2))
    await w.writeOptimizerState(m)
    await local.writeOptimizerState(m)
    expect(await w.localStep(sgd)).toEqual(await local.localStep(sgd))
    w.resetOptimizer()
    local.resetOptimizer()
    expect(await w.readOptimizerState()).toEqual([])

    const q = await local.readParams()
    expect(await w.evaluate(q)).toEqual(await local.evaluate(t, q))
    local.dispose()
    t.dispose()
  })

  it('rejects bad parameters with the model unchanged, and keeps working', async () => {
    const w = await start()
    const before = await w.readParams()
    const bad = before.slice()
    bad[3] = NaN
    await expect(w.writeParams(bad)).rejects.toThrow(/non-finite value at 3/)
    await expect(w.writeParams(before.subarray(1))).rejects.toThrow(/values, model has/)
    await expect(w.localStep({ optimizer: 'sgd', lr: -1, momentum: 0, weightDecay: 0 })).rejects.toThrow(/bad lr/)
    expect(await w.readParams()).toEqual(before)
    expect((await w.gradient()).grad.length).toBe(w.paramCount)
  })

  it('a gradient on the worker leaves this thread free to run its own timers', async () => {
    const w = await start()
    // Enough work that the worker is busy for many timer periods.
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    const t0 = performance.now()
    for (let i = 0; i < 20; i++) await w.localStep({ optimizer: 'sgd', lr: 0.01, momentum: 0, weightDecay: 0 })
    const ms = performance.now() - t0
    clearInterval(timer)
    // With the model on this thread no timer could fire during a step (a step holds the thread);
    // here timers keep running, roughly once per millisecond of the run.
    expect(ticks).toBeGreaterThan(Math.min(20, ms / 4))
  })

  it('does not leak tensors on this thread (the model lives on the worker)', async () => {
    const before = tf.memory().numTensors
    const w = await start()
    await w.gradient()
    await w.evaluate(await w.readParams())
    expect(tf.memory().numTensors).toBe(before)
  })

  it('a worker that dies rejects the pending and every later call instead of hanging', async () => {
    const w = await start()
    const pending = w.localStep({ optimizer: 'sgd', lr: 0.01, momentum: 0, weightDecay: 0 })
    ;(w as unknown as { port: { terminate(): void } }).port.terminate()
    await expect(pending).rejects.toThrow(/compute worker failed/)
    await expect(w.readParams()).rejects.toThrow(/compute worker failed/)
  })

  it('a worker that cannot build the model fails start() with the reason', async () => {
    const port = nodeComputePort(spawnTsWorker(new URL('./worker-node.ts', import.meta.url)))
    await expect(WorkerCompute.start(port, { ...init, batchSize: 0, backend: 'wasm' })).rejects.toThrow(/bad batchSize 0/)
  })

  it('calls after dispose() reject', async () => {
    const w = await start()
    w.dispose()
    await expect(w.gradient()).rejects.toThrow(/disposed/)
  })

  it('sends a view\'s own elements, not the whole buffer behind it (an arena slot\'s buffer is many models)', async () => {
    // Every message the real port carries, with the ArrayBuffers it clones or transfers.
    const sent: { op: string; bytes: number }[] = []
    const inner = nodeComputePort(spawnTsWorker(new URL('./worker-node.ts', import.meta.url)))
    const port = { ...inner, post: (m: Parameters<typeof inner.post>[0], t?: ArrayBuffer[]) => {
      const v = (m as { params?: Float32Array; state?: Float32Array[] })
      const arrays = v.params ? [v.params] : v.state ?? []
      for (const a of arrays) sent.push({ op: m.op, bytes: a.buffer.byteLength })
      inner.post(m, t)
    } }
    const w = await WorkerCompute.start(port, { ...init, backend: 'wasm' })
    started.push(w)
    const d = w.paramCount
    // x lives in slot 1 of a 9-slot block, as dpsgd's x does in its VectorArena.
    const block = new Float32Array(9 * d)
    const x = block.subarray(d, 2 * d)
    x.set(await w.readParams())
    x[0] += 0.25
    await w.writeParams(x)
    await w.evaluate(x)
    await w.writeOptimizerState([block.subarray(2 * d, 3 * d)])
    expect(sent.map((s) => s.op)).toEqual(['writeParams', 'evaluate', 'writeOptimizerState'])
    for (const s of sent) expect(s.bytes).toBe(4 * d)
    // The model got exactly the view's values, and the caller's block is untouched (not detached).
    expect((await w.readParams())[0]).toBe(x[0])
    expect(block.length).toBe(9 * d)
    expect(x[0]).toBeCloseTo(block[d])
  })
})
