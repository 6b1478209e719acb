import { describe, expect, it } from 'vitest'
import type { Trainer } from './swarm-session'
import { computeThreadFromSearch, placeTrainer } from './browser-session'

/** A trainer stand-in that records which path built it (placeTrainer never looks inside). */
const fake = (where: 'worker' | 'main'): Trainer => ({
  compute: null as never, train: null as never, computeThread: where,
  evaluate: async () => ({ loss: 0, accuracy: 0 }), dispose: () => {},
})

describe('where a tab trains its model', () => {
  const calls: string[] = []
  const base = {
    workersSupported: true,
    onWorker: async (b: 'wasm' | 'cpu') => (calls.push(`worker:${b}`), fake('worker')),
    onPage: () => (calls.push('page'), fake('main')),
  }

  it('wasm and cpu go to the worker by default', async () => {
    calls.length = 0
    expect((await placeTrainer({ ...base, want: 'worker', backend: 'wasm' })).computeThread).toBe('worker')
    expect((await placeTrainer({ ...base, want: 'worker', backend: 'cpu' })).computeThread).toBe('worker')
    expect(calls).toEqual(['worker:wasm', 'worker:cpu'])
  })

  it('GPU backends and ?compute=main stay on the page thread, without a note', async () => {
    calls.length = 0
    for (const backend of ['webgpu', 'webgl'] as const) {
      const t = await placeTrainer({ ...base, want: 'worker', backend })
      expect(t.computeThread).toBe('main')
      expect(t.computeNote).toBeUndefined()
    }
    expect((await placeTrainer({ ...base, want: 'main', backend: 'wasm' })).computeThread).toBe('main')
    expect(calls).toEqual(['page', 'page', 'page'])
  })

  it('a worker that fails to start falls back to the page thread and says why', async () => {
    const t = await placeTrainer({
      ...base, want: 'worker', backend: 'wasm',
      onWorker: async () => { throw new Error('compute worker: not ready within 60000 ms') },
    })
    expect(t.computeThread).toBe('main')
    expect(t.computeNote).toMatch(/worker failed: .*not ready/)
    const none = await placeTrainer({ ...base, workersSupported: false, want: 'worker', backend: 'wasm' })
    expect(none.computeThread).toBe('main')
    expect(none.computeNote).toMatch(/no module Web Workers/)
  })

  it('reads ?compute= and ignores anything else', () => {
    expect(computeThreadFromSearch('?room=a&compute=main')).toBe('main')
    expect(computeThreadFromSearch('?compute=worker')).toBe('worker')
    expect(computeThreadFromSearch('?compute=gpu')).toBeNull()
    expect(computeThreadFromSearch('')).toBeNull()
  })
})
