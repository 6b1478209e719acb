import { afterAll, describe, expect, it } from 'vitest'
import { makeSynthetic } from '../../../shared/data/synthetic'
import { buildModel, initParams } from '../models'
import { setupNodeBackend } from '../node-backend'
import { TfCompute, uploadDataset } from '../tf-compute'
import { createNodeHogwildPool } from './node-pool'
import type { WorkerHogwildPool } from './pool'

const { train, test } = makeSynthetic({ seed: 11, train: 2048, test: 1024 })
const spec = buildModel('mlp', train)
const pools: WorkerHogwildPool[] = []
afterAll(() => pools.forEach((p) => p.dispose()))

describe('Hogwild pool (worker_threads over a SharedArrayBuffer)', () => {
  it('2 updaters reduce the loss and the counter equals the number of updates', async () => {
    await setupNodeBackend('wasm')
    const x0 = initParams(spec, 3)
    const pool = createNodeHogwildPool({ model: 'mlp', train, paramCount: spec.paramCount, initial: x0, batchSize: 32, seed: 3, updaters: 2 })
    pools.push(pool)
    const ac = new AbortController()
    const first = await pool.run(40, 0.1, ac.signal)
    expect(pool.updates).toBe(40)
    expect(first.samples).toBe(40 * 32)
    const second = await pool.run(160, 0.1, ac.signal)
    expect(pool.updates).toBe(200)
    expect(pool.workerCount).toBe(2)
    expect(second.loss).toBeLessThan(first.loss)

    const evalc = new TfCompute({ model: 'mlp', train: test, batchSize: 32, seed: 3 })
    const t = uploadDataset(test)
    const before = await evalc.evaluate(t, x0)
    const after = await evalc.evaluate(t, pool.snapshot())
    expect(after.loss).toBeLessThan(before.loss)
    expect(after.accuracy).toBeGreaterThan(before.accuracy)
    evalc.dispose()
    t.dispose()

    // U changes at run time: one updater for the next run, then three.
    pool.updaters = 1
    await pool.run(5, 0.1, ac.signal)
    expect(pool.workerCount).toBe(1)
    pool.updaters = 3
    await pool.run(6, 0.1, ac.signal)
    expect(pool.workerCount).toBe(3)
    expect(pool.updates).toBe(211)
  })

  it('overwrite/addInPlace validate and apply; an aborted run stops', async () => {
    const x0 = initParams(spec, 4)
    const pool = createNodeHogwildPool({ model: 'mlp', train, paramCount: spec.paramCount, initial: x0, batchSize: 16, seed: 4, updaters: 1 })
    pools.push(pool)
    const delta = new Float32Array(spec.paramCount).fill(0.5)
    pool.addInPlace(delta)
    expect(pool.snapshot()[0]).toBeCloseTo(x0[0] + 0.5, 6)
    expect(() => pool.addInPlace(new Float32Array(3))).toThrow()
    const bad = x0.slice()
    bad[1] = NaN
    expect(() => pool.overwrite(bad)).toThrow(/non-finite/)
    pool.overwrite(x0)
    expect(pool.snapshot()[0]).toBe(x0[0])
    const ac = new AbortController()
    const p = pool.run(1_000_000, 0.01, ac.signal)
    // Abort once the run is demonstrably under way (polling the counter, not a timer).
    while (pool.updates < 3) await new Promise((r) => setImmediate(r))
    ac.abort()
    await expect(p).rejects.toThrow()
    const stopped = pool.updates
    expect(stopped).toBeLessThan(1_000_000)
    // The pool is usable again after an abort.
    await pool.run(2, 0.01, new AbortController().signal)
    expect(pool.updates).toBe(stopped + 2)
  })
})
