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
