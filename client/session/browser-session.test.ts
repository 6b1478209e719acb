import { describe, expect, it } from 'vitest'
import type { Trainer } from './swarm-session'
import { HIDDEN_GRACE_DEFAULT_MS, HIDDEN_GRACE_MAX_MS, HIDDEN_GRACE_MIN_MS, announcedConfigSchema, defaultConfig, parseRoomConfig } from '../../shared/config'
import { friendlyName } from '../../shared/names'
import { computeThreadFromSearch, hiddenGraceMs, placeTrainer, volunteerName } from './browser-session'

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

describe('hidden-tab grace and names', () => {
  it('takes the grace from the room config, bounded by the schema, with a default long enough for a screen dim', () => {
    expect(hiddenGraceMs(null)).toBe(HIDDEN_GRACE_DEFAULT_MS)
    expect(HIDDEN_GRACE_DEFAULT_MS).toBeGreaterThanOrEqual(30_000)
    expect(hiddenGraceMs({ hiddenGraceMs: 2_000 })).toBe(2_000)
    expect(hiddenGraceMs({})).toBe(HIDDEN_GRACE_DEFAULT_MS)
    expect(defaultConfig().hiddenGraceMs).toBe(HIDDEN_GRACE_DEFAULT_MS)
    expect(parseRoomConfig({ hiddenGraceMs: 5_000 })).toMatchObject({ ok: true, config: { hiddenGraceMs: 5_000 } })
    expect(parseRoomConfig({ hiddenGraceMs: HIDDEN_GRACE_MIN_MS - 1 })).toMatchObject({ ok: false, field: 'hiddenGraceMs' })
    expect(parseRoomConfig({ hiddenGraceMs: HIDDEN_GRACE_MAX_MS + 1 })).toMatchObject({ ok: false, field: 'hiddenGraceMs' })
    expect(parseRoomConfig({ hiddenGraceMs: 1.5e3 + 0.5 })).toMatchObject({ ok: false, field: 'hiddenGraceMs' })
    // A config stored before the option existed still reads, with the default.
    const { hiddenGraceMs: _, ...old } = defaultConfig()
    expect(announcedConfigSchema.parse(old).hiddenGraceMs).toBe(HIDDEN_GRACE_DEFAULT_MS)
  })

  it('joins with the given name, else a friendly one from the stable id', async () => {
    expect(await volunteerName('  Ada \n', Promise.resolve({ id: 'x' }))).toBe('Ada')
    expect(await volunteerName(undefined, Promise.resolve({ id: 'key-123' }))).toBe(friendlyName('key-123'))
    expect(await volunteerName('', Promise.resolve({ id: 'key-123' }))).toBe(friendlyName('key-123'))
  })
})
