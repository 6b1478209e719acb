import { describe, expect, it } from 'vitest'
import type { Compute, GradientResult } from '../algorithms/types'
import { deadline } from '../transport'
import { ATTACK_NAMES, ATTACKS, attackLevel, makeAttacker, meanStd, parseAttack, STATS_WINDOW } from './attacks'
import { MemoryNetwork } from './memory-mesh'

const v = (...xs: number[]) => Float32Array.from(xs)
const close = (a: Float32Array, b: number[]) => expect(Array.from(a).map((x) => +x.toFixed(5))).toEqual(b.map((x) => +x.toFixed(5)))
/** An attacker at model level (dpsgd) or gradient level (ssgd). */
const model = (name: string) => makeAttacker(name, { algorithm: 'dpsgd', seed: 1 })
const grad = (name: string) => makeAttacker(name, { algorithm: 'ssgd', seed: 1 })

describe('attack registry', () => {
  it('has every attack of the catalogue, each documented', () => {
    expect(Object.keys(ATTACKS).sort()).toEqual([...ATTACK_NAMES].sort())
    for (const n of ATTACK_NAMES) expect(ATTACKS[n].description.length).toBeGreaterThan(10)
  })

  it('parses NAME and NAME:VALUE, and names the choices on a typo', () => {
    expect(parseAttack('scaled')).toEqual({ name: 'scaled', param: 100 })
    expect(parseAttack('sign-flip:4')).toEqual({ name: 'sign-flip', param: 4 })
    expect(() => parseAttack('signflip')).toThrow(/sign-flip, scaled/)
    expect(() => parseAttack('stale:3')).toThrow(/no parameter/)
    expect(() => parseAttack('noise:x')).toThrow(/numeric σ/)
  })

  it('attacks gradients where the algorithm exchanges increments, models elsewhere', () => {
    expect(attackLevel('ssgd')).toBe('gradient')
    expect(attackLevel('asgd')).toBe('gradient')
    expect(attackLevel('od-sgd')).toBe('gradient')
    expect(attackLevel('dpsgd')).toBe('model')
    expect(attackLevel('ad-psgd')).toBe('model')
    expect(attackLevel('local-sgd')).toBe('model')
  })
})

describe('vector attacks', () => {
  it('sign-flip gives −c·x, scaled s·x, and the honest vector is untouched', () => {
    const x = v(1, -2, 0.5)
    close(model('sign-flip').poison('k', x), [-1, 2, -0.5])
    close(model('sign-flip:3').poison('k', x), [-3, 6, -1.5])
    close(model('scaled').poison('k', x), [100, -200, 50])
    close(x, [1, -2, 0.5])
  })

  it('noise adds seeded N(0, σ²): same seed same noise, spread ≈ σ', () => {
    const x = new Float32Array(20000)
    const a = model('noise:2').poison('k', x)
    const b = model('noise:2').poison('k', x)
    expect(a).toEqual(b)
    const { mean, std } = meanStd(Array.from({ length: 100 }, (_, i) => a.subarray(200 * i, 200 * (i + 1))))
    const avg = (q: Float32Array) => q.reduce((s, y) => s + y, 0) / q.length
    expect(Math.abs(avg(mean))).toBeLessThan(0.05)
    expect(avg(std)).toBeGreaterThan(1.9)
    expect(avg(std)).toBeLessThan(2.1)
  })

  it('alie gives mean − z·std over the neighbours and its own honest vector', () => {
    const a = model('alie:2')
    a.observe('k', 'p1', v(1, 10))
    a.observe('k', 'p2', v(3, 10))
    // sample {1, 3, 2} and {10, 10, 10}: mean (2, 10), std (√(2/3), 0)
    close(a.poison('k', v(2, 10)), [2 - 2 * Math.sqrt(2 / 3), 10])
  })

  it('ipm gives −ε × the mean of the honest vectors', () => {
    const a = model('ipm:0.5')
    a.observe('k', 'p1', v(2, 4))
    a.observe('k', 'p2', v(4, 8))
    close(a.poison('k', v(0, 0)), [-1, -2])
  })

  it('without neighbour vectors, ALIE falls back on its own recent honest vectors', () => {
    const a = grad('alie:1')
    a.poison('gradient', v(0))
    close(a.poison('gradient', v(2)), [0]) // mean 1, std 1
    for (let i = 0; i < 2 * STATS_WINDOW; i++) a.poison('gradient', v(5))
    close(a.poison('gradient', v(5)), [5]) // only the last STATS_WINDOW count: std 0
  })

  it('ignores neighbour vectors of another length', () => {
    const a = model('ipm:1')
    a.observe('k', 'p1', v(1, 2, 3))
    a.observe('k', 'p2', v(1, 2, 3))
    close(a.poison('k', v(4, 4)), [-4, -4])
  })

  it('stale replays the first vector forever', () => {
    const a = model('stale')
    close(a.poison('k', v(1, 1)), [1, 1])
    close(a.poison('k', v(7, 8)), [1, 1])
  })

  it('label-flip maps y → K − 1 − y on a copy', () => {
    const d = { y: Uint8Array.from([0, 3, 9]), numClasses: 10 }
    expect(Array.from(model('label-flip').data(d).y)).toEqual([9, 6, 0])
    expect(Array.from(d.y)).toEqual([0, 3, 9])
    expect(model('sign-flip').data(d)).toBe(d)
  })
})

/** A compute whose gradient is (1, 2, 3) times the call number. */
function fakeCompute(): Compute & { calls: number } {
  const c = {
    calls: 0,
    paramCount: 3,
    async gradient(): Promise<GradientResult> {
      c.calls++
      return { grad: v(c.calls, 2 * c.calls, 3 * c.calls), loss: 1, samples: 4 }
    },
  }
  return c as unknown as Compute & { calls: number }
}

describe('compute wrapper (gradient level)', () => {
  it('poisons gradient() and keeps the rest of the compute', async () => {
    const c = fakeCompute()
    const w = grad('sign-flip:2').compute(c)
    expect(w.paramCount).toBe(3)
    const r = await w.gradient()
    close(r.grad, [-2, -4, -6])
    expect(r.loss).toBe(1)
  })

  it('the stale free-rider stops computing after its first gradient', async () => {
    const c = fakeCompute()
    const w = grad('stale').compute(c)
    await w.gradient()
    close((await w.gradient()).grad, [1, 2, 3])
    expect(c.calls).toBe(1)
  })

  it('is the identity at model level and for non-vector attacks', () => {
    const c = fakeCompute()
    expect(model('sign-flip').compute(c)).toBe(c)
    expect(grad('flood').compute(c)).toBe(c)
  })
})

describe('mesh wrapper', () => {
  const pair = () => {
    const net = new MemoryNetwork({ seed: 2 })
    return [net.join('a'), net.join('b'), net.join('c')] as const
  }

  it('model level: poisons what it sends, learns from what it receives', async () => {
    const [a, b, c] = pair()
    const atk = model('ipm:1')
    const m = atk.mesh(a)
    await b.send('a', { kind: 'dpsgd/x', round: 0, data: v(2, 2) })
    await c.send('a', { kind: 'dpsgd/x', round: 0, data: v(4, 4) })
    await m.receive({ kind: 'dpsgd/x', from: 'b' }, deadline('t', 100))
    await m.receive({ kind: 'dpsgd/x', from: 'c' }, deadline('t', 100))
    await m.send('b', { kind: 'dpsgd/x', round: 1, data: v(0, 0) })
    const got = await b.receive({ kind: 'dpsgd/x' }, deadline('t', 100))
    close(got.data!, [-2, -2]) // −mean of {2, 4, 0}
    expect(m.self).toBe('a')
    expect(m.membership().peers).toEqual(['a', 'b', 'c'])
  })

  it('gradient level: the mesh passes payloads through', async () => {
    const [a, b] = pair()
    await grad('sign-flip').mesh(a).send('b', { kind: 'ssgd/e1/rs0', round: 0, data: v(1) })
    close((await b.receive({ kind: 'ssgd/e1/rs0' }, deadline('t', 100))).data!, [1])
  })

  it('clock: receivers see a huge clock, the attacker keeps an honest one', async () => {
    const [a, b] = pair()
    const m = makeAttacker('clock:1000000', { algorithm: 'dpsgd', seed: 1 }).mesh(a)
    m.clock.advance(5)
    await m.send('b', { kind: 'k', round: 0 })
    const e = await b.receive({ kind: 'k' }, deadline('t', 100))
    expect(e.clock).toBe(1_000_000)
    expect(m.clock.value).toBe(5)
    await m.send('b', { kind: 'k', round: 1 })
    expect((await b.receive({ kind: 'k' }, deadline('t', 100))).clock).toBe(1_000_000)
  })

  it('flood: k junk messages follow each real one, the real one arrives intact', async () => {
    const [a, b] = pair()
    const atk = model('flood:6')
    await atk.mesh(a).send('b', { kind: 'dpsgd/x', round: 3, data: v(1, 2) })
    await new Promise((r) => setTimeout(r, 5))
    close((await b.receive({ kind: 'dpsgd/x', round: 3 }, deadline('t', 100))).data!, [1, 2])
    expect(b.discard({ from: 'a' })).toBe(6)
    expect(atk.counts.junk).toBe(6)
  })
})
