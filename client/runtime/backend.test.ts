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

describe('selectBackend: WebGPU adapter probe', () => {
  // Node has no navigator.gpu; stand one in for the probe. (The webgpu backend itself is not
  // registered in Node, so an accepted adapter ends at activation with 'not available'.)
  const withGpu = async <T>(adapter: object | null, fn: () => Promise<T>): Promise<T> => {
    const g = globalThis as { navigator?: unknown }
    const had = Object.getOwnPropertyDescriptor(g, 'navigator')
    let calls = 0
    Object.defineProperty(g, 'navigator', { configurable: true, value: { gpu: { requestAdapter: async () => (calls++, adapter) } } })
    try {
      return await fn()
    } finally {
      if (had) Object.defineProperty(g, 'navigator', had)
      else delete g.navigator
      expect(calls).toBeGreaterThan(0)
    }
  }

  it('skips a software fallback adapter (SwiftShader) without benchmarking it', async () => {
    const r = await withGpu({ info: { isFallbackAdapter: true, description: 'SwiftShader' } }, () =>
      selectBackend({ candidates: ['webgpu', 'cpu'], benchMs: 30 }))
    expect(r.measurements[0]).toMatchObject({ backend: 'webgpu', ok: false })
    expect(r.measurements[0].note).toMatch(/software fallback adapter.*SwiftShader/)
    expect(r.backend).toBe('cpu')
  })

  it('also reads the older adapter.isFallbackAdapter flag', async () => {
    const r = await withGpu({ isFallbackAdapter: true }, () => selectBackend({ candidates: ['webgpu', 'cpu'], benchMs: 30 }))
    expect(r.measurements[0].note).toMatch(/software fallback adapter/)
  })

  it('tries a hardware adapter (and a fallback one only when allowed)', async () => {
    const hw = await withGpu({ info: { isFallbackAdapter: false, vendor: 'nvidia' } }, () =>
      selectBackend({ candidates: ['webgpu', 'cpu'], benchMs: 30 }))
    // Passed the probe and went on to activation, which Node cannot do.
    expect(hw.measurements[0]).toMatchObject({ backend: 'webgpu', ok: false, note: 'not available' })
    const allowed = await withGpu({ info: { isFallbackAdapter: true } }, () =>
      selectBackend({ candidates: ['webgpu', 'cpu'], benchMs: 30, allowFallbackWebgpu: true }))
    expect(allowed.measurements[0].note).toBe('not available')
  })

  it('retries when requestAdapter() returns null, then gives up with a note', async () => {
    const r = await withGpu(null, () => selectBackend({ candidates: ['webgpu', 'cpu'], benchMs: 30 }))
    expect(r.measurements[0].note).toMatch(/returned null 3 times/)
  })
})
