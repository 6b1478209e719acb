import * as tf from '@tensorflow/tfjs'
import { describe, expect, it } from 'vitest'
import { backendFromSearch, selectBackend } from './backend'
import './node-backend'

describe('selectBackend (Node)', () => {
  it('measures the available candidates and activates the fastest', async () => {
    const r = await selectBackend({ candidates: ['webgpu', 'webgl', 'wasm', 'cpu'], benchMs: 100 })
    const ok = r.measurements.filter((m) => m.ok)
    expect(ok.map((m) => m.backend).sort()).toEqual(['cpu', 'wasm'])
    const best = ok.reduce((a, b) => ((a.stepsPerSec ?? 0) >= (b.stepsPerSec ?? 0) ? a : b))
    expect(r.backend).toBe(best.backend)
    expect(tf.getBackend()).toBe(r.backend)
    expect(r.measurements.find((m) => m.backend === 'webgpu')?.ok).toBe(false)
  })

  it('honours an override without measuring, and rejects unknown names', async () => {
    const r = await selectBackend({ override: 'cpu' })
    expect(r).toMatchObject({ backend: 'cpu', measurements: [] })
    expect(tf.getBackend()).toBe('cpu')
    await expect(selectBackend({ override: 'tpu' })).rejects.toThrow(/unknown backend/)
    expect(backendFromSearch('?room=a&backend=wasm')).toBe('wasm')
    expect(backendFromSearch('?backend=nope')).toBeNull()
  })

  it('does not leak tensors while benchmarking', async () => {
    await tf.setBackend('wasm')
    const before = tf.memory().numTensors
    await selectBackend({ candidates: ['wasm'], benchMs: 50 })
    expect(tf.memory().numTensors).toBe(before)
  })
})
