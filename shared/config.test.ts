import { describe, expect, it } from 'vitest'
import { ALGORITHMS, defaultConfig, parseRoomConfig, parsePartition } from './config'

describe('room config', () => {
  it('defaults to DPSGD on a ring with MNIST and a small MLP', () => {
    const c = defaultConfig()
    expect(c).toMatchObject({ algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', order: 'awc' })
  })

  it('every algorithm has valid defaults', () => {
    for (const a of ALGORITHMS) expect(parseRoomConfig({ algorithm: a }).ok, a).toBe(true)
  })

  it('names the bad field', () => {
    const cases: [unknown, string][] = [
      [{ algorithm: 'sgd-9000' }, 'algorithm'],
      [{ lr: -1 }, 'lr'],
      [{ batchSize: 0 }, 'batchSize'],
      [{ partition: 'weird' }, 'partition'],
      [{ algorithm: 'od-sgd', topology: 'ring' }, 'topology'],
      [{ algorithm: 'ssgd', topology: 'ring' }, 'topology'],
      [{ sync: { kind: 'qsr', hBase: 4, alpha: 0.1, hMax: 2 } }, 'sync'],
      [{ adam: { beta1: 2 } }, 'adam.beta1'],
      [{ colour: 'red' }, 'colour'],
    ]
    for (const [input, field] of cases) {
      const r = parseRoomConfig(input)
      expect(r.ok, JSON.stringify(input)).toBe(false)
      if (!r.ok) {
        expect(r.field).toBe(field)
        expect(r.error).toContain(field)
      }
    }
    expect(parseRoomConfig([1, 2]).ok).toBe(false)
  })

  it('merges nested defaults and keeps per-algorithm defaults under overrides', () => {
    const r = parseRoomConfig({ algorithm: 'local-adamw', adam: { beta2: 0.99 }, lr: 0.001 })
    expect(r.ok).toBe(true)
    if (r.ok) {
      expect(r.config.adam).toEqual({ beta1: 0.9, beta2: 0.99, eps: 1e-8 })
      expect(r.config.topology).toBe('clique')
      expect(r.config.sync.kind).toBe('qsr')
      expect(r.config.lr).toBe(0.001)
    }
  })

  it('run-length defaults follow totalSteps: the default warmup is the same fraction of any run; each schedule field changes only itself', () => {
    const sched = (input: Record<string, unknown>) => {
      const r = parseRoomConfig(input)
      if (!r.ok) throw new Error(r.error)
      return r.config.schedule
    }
    // The recipes' warmups at the default 3000 steps…
    expect(sched({ algorithm: 'ssgd' })).toEqual({ kind: 'cosine', warmupSteps: 100, minLr: 0 })
    expect(sched({ algorithm: 'local-sgd' }).warmupSteps).toBe(150)
    // …scaled to short runs instead of refusing them (80 steps: 3 % and 5 %).
    for (const algorithm of ['ssgd', 'local-sgd', 'local-adamw']) expect(parseRoomConfig({ algorithm, totalSteps: 80 }).ok, algorithm).toBe(true)
    expect(sched({ algorithm: 'ssgd', totalSteps: 80 })).toEqual({ kind: 'cosine', warmupSteps: 3, minLr: 0 })
    expect(sched({ algorithm: 'local-adamw', totalSteps: 80 })).toEqual({ kind: 'cosine', warmupSteps: 4, minLr: 1e-6 })
    expect(sched({ algorithm: 'ssgd', totalSteps: 30_000 }).warmupSteps).toBe(1000)
    expect(sched({ algorithm: 'ssgd', totalSteps: 1 }).warmupSteps).toBe(0)
    expect(defaultConfig('local-sgd', 800).schedule.warmupSteps).toBe(40)
    // A warmup alone keeps the default kind and decay; a kind alone keeps the default warmup.
    expect(sched({ algorithm: 'ssgd', totalSteps: 80, schedule: { warmupSteps: 8 } })).toEqual({ kind: 'cosine', warmupSteps: 8, minLr: 0 })
    expect(sched({ algorithm: 'ssgd', totalSteps: 80, schedule: { kind: 'step' } })).toMatchObject({ kind: 'step', warmupSteps: 3 })
    expect(sched({ algorithm: 'ssgd', schedule: { kind: 'constant', warmupSteps: 0 } })).toEqual({ kind: 'constant', warmupSteps: 0 })
    // Algorithms without a warmup keep none; an explicit warmup that does not fit is still named.
    expect(sched({ algorithm: 'dpsgd', totalSteps: 80 }).warmupSteps).toBe(0)
    const bad = parseRoomConfig({ algorithm: 'ssgd', totalSteps: 80, schedule: { warmupSteps: 80 } })
    expect(bad.ok || bad.field).toBe('schedule')
  })

  it('parses partitions', () => {
    expect(parsePartition('iid')).toEqual({ kind: 'iid' })
    expect(parsePartition('label-skew:2')).toEqual({ kind: 'label-skew', classesPerPeer: 2 })
    expect(parsePartition('dirichlet:0.5')).toEqual({ kind: 'dirichlet', alpha: 0.5 })
  })

  it('lrScaling: none by default; linear defaults to Goyal\'s reference batch 256; only for ssgd; bad values named', () => {
    expect(defaultConfig('ssgd').lrScaling).toEqual({ kind: 'none' })
    const r = parseRoomConfig({ algorithm: 'ssgd', lrScaling: { kind: 'linear' } })
    expect(r.ok && r.config.lrScaling).toEqual({ kind: 'linear', referenceBatch: 256 })
    const custom = parseRoomConfig({ algorithm: 'ssgd', lrScaling: { kind: 'linear', referenceBatch: 64 } })
    expect(custom.ok && custom.config.lrScaling).toEqual({ kind: 'linear', referenceBatch: 64 })
    const cases: [unknown, string, RegExp][] = [
      [{ algorithm: 'dpsgd', lrScaling: { kind: 'linear' } }, 'lrScaling', /algorithm 'ssgd'/],
      [{ algorithm: 'ssgd', lrScaling: { kind: 'linear', referenceBatch: 0 } }, 'lrScaling.referenceBatch', /lrScaling\.referenceBatch/],
      [{ algorithm: 'ssgd', lrScaling: { kind: 'sqrt' } }, 'lrScaling.kind', /lrScaling/],
    ]
    for (const [input, field, message] of cases) {
      const res = parseRoomConfig(input)
      expect(res.ok, JSON.stringify(input)).toBe(false)
      if (!res.ok) {
        expect(res.field).toBe(field)
        expect(res.error).toMatch(message)
      }
    }
  })

  it('resyncEvery: 100 steps by default, 0 allowed (fallback-only), negative or fractional named', () => {
    expect(defaultConfig('ssgd').resyncEvery).toBe(100)
    const zero = parseRoomConfig({ algorithm: 'ssgd', resyncEvery: 0 })
    expect(zero.ok && zero.config.resyncEvery).toBe(0)
    for (const bad of [-1, 2.5]) {
      const r = parseRoomConfig({ algorithm: 'ssgd', resyncEvery: bad })
      expect(r.ok).toBe(false)
      if (!r.ok) expect(r.field).toBe('resyncEvery')
    }
  })
})
