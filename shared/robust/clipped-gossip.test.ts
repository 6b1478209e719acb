import { describe, expect, it } from 'vitest'
import { VectorArena } from '../math/arena'
import { mixInto } from '../math/vector'
import { Rng } from '../testing/random'
import { ClipGate, clipScale, dist, RunningBound } from './clip'
import { adaptiveRadius, ClippedGossip, clippedMix, GOSSIP_GATE_RATIO } from './clipped-gossip'

const f32 = (...v: number[]) => Float32Array.from(v)
const third = 1 / 3

describe('clip primitives', () => {
  it('clipScale: 1 within the radius and on it (ties), τ/‖z‖ beyond, 0 for a non-finite norm', () => {
    expect(clipScale(3, 5)).toBe(1)
    expect(clipScale(5, 5)).toBe(1)
    expect(clipScale(10, 5)).toBe(0.5)
    expect(clipScale(Infinity, 5)).toBe(0)
    expect(clipScale(NaN, 5)).toBe(0)
    expect(clipScale(1e30, Infinity)).toBe(1)
  })

  it('RunningBound: factor × median of the window once minSamples are in; zeros and non-finite values are not recorded', () => {
    const b = new RunningBound({ window: 4, minSamples: 3, factor: 2 })
    b.observe(0)
    b.observe(NaN)
    b.observe(1)
    b.observe(3)
    expect(b.size).toBe(2)
    expect(b.bound(7)).toBe(7) // fallback below minSamples
    b.observe(2)
    expect(b.median()).toBe(2)
    expect(b.bound()).toBe(4)
    b.observe(10) // window: 1 3 2 10 → median 2.5
    expect(b.bound()).toBe(5)
    b.observe(10) // the oldest (1) drops: 3 2 10 10 → median 6.5
    expect(b.median()).toBe(6.5)
  })

  it('ClipGate: reports at every k-th round in a row beyond ratio·τ, with the evidence; a round within resets', () => {
    const g = new ClipGate('x', 2, 3)
    expect(g.observe('a', 5, 1)).toBeNull()
    expect(g.observe('a', 5, 1)).toBeNull()
    expect(g.observe('a', 5, 1)).toBe('x clipped in 3 consecutive rounds (‖Δ‖ = 5.00 > τ = 1.00)')
    expect(g.observe('a', 1.5, 1)).toBeNull() // clipped, but by less than the ratio: resets
    expect(g.run('a')).toBe(0)
    for (let k = 0; k < 2; k++) expect(g.observe('a', 5, 1)).toBeNull()
    expect(g.observe('a', 5, 1)).toMatch(/clipped in 3 consecutive rounds/)
    for (let k = 0; k < 2; k++) expect(g.observe('a', 5, 1)).toBeNull()
    expect(g.observe('a', 5, 1)).toMatch(/clipped in 6 consecutive rounds/)
  })
})

describe('adaptiveRadius (the weighted quantile of the neighbours\' distances)', () => {
  it('ring: the farther neighbour is clipped to the nearer one\'s distance', () => {
    expect(adaptiveRadius([5, 1], [third, third])).toBe(1)
    expect(adaptiveRadius([1, 5], [third, third])).toBe(1)
  })

  it('ties at the radius are not clipped', () => {
    // Farthest first: one 2 (weight ¼ ≤ ⅜ of the budget) is in the clipped set, the other 2 is the radius.
    expect(adaptiveRadius([2, 2, 1], [0.25, 0.25, 0.25])).toBe(2)
    expect(adaptiveRadius([3, 3], [third, third])).toBe(3)
  })

  it('clique of 8: the three farthest (3/8 ≤ half of 7/8) are clipped to the 4th-farthest', () => {
    expect(adaptiveRadius([1, 2, 3, 4, 5, 6, 7], Array(7).fill(1 / 8))).toBe(4)
  })

  it('unequal weights: the clipped set stops at half the weight', () => {
    // total 0.7, budget 0.35: 10 (0.1) fits, 3 (0.1 + 0.4) does not → τ = 3.
    expect(adaptiveRadius([10, 3, 2], [0.1, 0.4, 0.2])).toBe(3)
  })

  it('one neighbour: its own distance (no clipping from the quantile); none: Infinity', () => {
    expect(adaptiveRadius([7], [0.5])).toBe(7)
    expect(adaptiveRadius([], [])).toBe(Infinity)
  })
})

describe('clippedMix: x_i + Σ w_ij clip(x_j − x_i, τ)', () => {
  it('a 2-D example by hand', () => {
    // own (0, 0), ring weights ⅓: A = (3, 4) at 5, B = (0, 1) at 1; τ = 1 (the nearer).
    // clip(A) = (0.6, 0.8), clip(B) = (0, 1) → x' = ⅓(0.6, 0.8) + ⅓(0, 1) = (0.2, 0.6).
    const own = f32(0, 0)
    const out = new Float32Array(2)
    const tau = adaptiveRadius([5, 1], [third, third])
    const r = clippedMix(out, own, third, [third, third], [f32(3, 4), f32(0, 1)], tau)
    expect(r.dists).toEqual([5, 1])
    expect(r.scales[0]).toBeCloseTo(0.2, 12)
    expect(r.scales[1]).toBe(1)
    expect(out[0]).toBeCloseTo(0.2, 6)
    expect(out[1]).toBeCloseTo(0.6, 6)
    // The plain average would be (1, 5/3).
  })

  it('off-centre own model, output aliasing the input', () => {
    // own (1, 1): A = (4, 5) − own = (3, 4) at 5, τ = 2.5 → clip = (1.5, 2); w = ½ → x' = (1.75, 2).
    const own = f32(1, 1)
    clippedMix(own, own, 0.5, [0.5], [f32(4, 5)], 2.5)
    expect(own[0]).toBeCloseTo(1.75, 6)
    expect(own[1]).toBeCloseTo(2, 6)
  })

  it('all-honest, identical-ish inputs equal the plain average within 1e-6 (JS loops and SIMD arena)', () => {
    const rng = new Rng(3)
    const d = 101
    const own = Float32Array.from({ length: d }, () => rng.gaussian())
    const ws = [0.2, 0.2, 0.2, 0.2]
    // Equal-norm differences (all at the radius: ties are not clipped) and a tiny perturbation.
    const dirs = ws.map(() => Float32Array.from({ length: d }, () => rng.gaussian()))
    const equal = dirs.map((u) => {
      const n = Math.hypot(...u)
      return own.map((v, i) => v + (0.01 * u[i]) / n)
    })
    const tiny = dirs.map((u) => own.map((v, i) => v + 1e-7 * u[i]))
    for (const vs of [equal, tiny, ws.map(() => own.slice())]) {
      const plain = mixInto(new Float32Array(d), [0.2, ...ws], [own, ...vs])
      for (const arena of [undefined, new VectorArena(d, { slots: 2 }), new VectorArena(d, { slots: 2, forceJs: true })]) {
        const x = arena ? arena.alloc() : new Float32Array(d)
        x.set(own)
        const out = arena ? arena.alloc() : new Float32Array(d)
        const g = new ClippedGossip()
        g.combine(out, x, 0.2, ['a', 'b', 'c', 'd'], ws, vs, arena)
        for (let i = 0; i < d; i++) expect(Math.abs(out[i] - plain[i])).toBeLessThan(1e-6)
      }
    }
  })

  for (const [name, attack] of [['−10 × model', -10], ['100 × model', 100]] as const) {
    it(`a hostile neighbour sending ${name} moves an honest peer by at most the radius`, () => {
      const rng = new Rng(7)
      const d = 64
      const own = Float32Array.from({ length: d }, () => rng.gaussian())
      const honest = [0, 1].map(() => own.map((v) => v + 0.05 * rng.gaussian()))
      const hostile = own.map((v) => attack * v)
      const ws = [0.25, 0.25, 0.25] // torus-like: self ¼ + three neighbours
      const g = new ClippedGossip()
      const out = new Float32Array(d)
      const r = g.combine(out, own, 0.25, ['h1', 'h2', 'bad'], ws, [...honest, hostile])
      // The farthest neighbour (¼ ≤ half of ¾) is clipped to the next one's distance: the farther honest one.
      expect(r.tau).toBeCloseTo(Math.max(...honest.map((h) => dist(h, own))), 5)
      expect(r.scales[2]).toBeLessThan(0.01)
      expect(dist(out, own)).toBeLessThanOrEqual(0.75 * r.tau + 1e-6)
      // The hostile neighbour's own share of the move: at most its weight times τ.
      const withoutBad = new Float32Array(d)
      clippedMix(withoutBad, own, 0.5, [0.25, 0.25], honest, r.tau)
      expect(dist(out, withoutBad)).toBeLessThanOrEqual(0.25 * r.tau + 1e-6)
    })
  }

  it('a single hostile neighbour (no quantile possible) is held by the cap: ‖own‖ at first, then 4 × the median radius', () => {
    const d = 8
    const g = new ClippedGossip()
    const own = Float32Array.from({ length: d }, (_, i) => i + 1)
    const out = new Float32Array(d)
    const bad = own.map((v) => -10 * v)
    const first = g.combine(out, own, 0.5, ['bad'], [0.5], [bad])
    expect(first.tau).toBeCloseTo(Math.hypot(...own), 4)
    expect(dist(out, own)).toBeLessThanOrEqual(0.5 * first.tau + 1e-4)
    // History of honest rounds at distance 0.1, then the hostile one: τ = 4 × 0.1.
    const g2 = new ClippedGossip()
    for (let k = 0; k < 6; k++) {
      const nb = own.slice()
      nb[0] += 0.1
      g2.combine(new Float32Array(d), own, 0.5, ['h'], [0.5], [nb])
    }
    const r = g2.combine(out, own, 0.5, ['bad'], [0.5], [bad])
    expect(r.tau).toBeCloseTo(0.4, 5)
    expect(dist(out, own)).toBeLessThanOrEqual(0.2 + 1e-5)
  })
})

describe('ClippedGossip sanity gate', () => {
  it(`reports a neighbour clipped by more than ${GOSSIP_GATE_RATIO}× in 10 consecutive rounds, once per 10, with the evidence; an honest far neighbour never`, () => {
    const reports: { peer: string; why: string }[] = []
    const g = new ClippedGossip((peer, why) => reports.push({ peer, why }))
    const d = 4
    const own = f32(1, 1, 1, 1)
    const near = f32(1.1, 1, 1, 1) // 0.1
    const far = f32(1, 1.25, 1, 1) // 0.25: clipped every round, by 2.5× (under the gate's ratio)
    const bad = f32(-10, -10, -10, -10) // ≈ 22
    for (let k = 0; k < 25; k++) {
      g.combine(new Float32Array(d), own, 0.25, ['near', 'far', 'bad'], [0.25, 0.25, 0.25], [near, far, k === 3 ? near : bad])
    }
    // Round 3 the hostile peer behaved: its run restarts at round 4, so rounds 4…13 and 14…23.
    expect(reports.map((r) => r.peer)).toEqual(['bad', 'bad'])
    expect(reports[0].why).toMatch(/^gossip contribution clipped in 10 consecutive rounds \(‖Δ‖ = 22\.\d > τ = 0\.250\)$/)
    expect(reports[1].why).toMatch(/clipped in 20 consecutive rounds/)
  })

  it('leaver hand-overs are clipped to the cap', () => {
    const g = new ClippedGossip()
    const x = f32(3, 4) // ‖x‖ = 5: the cap before any history
    g.foldHandovers(x, [{ from: 'L', x: f32(-30, -40), share: 0.5 }])
    // x_L − x = (−33, −44) at 55, clipped to 5: (−3, −4); half of it.
    expect(x[0]).toBeCloseTo(1.5, 5)
    expect(x[1]).toBeCloseTo(2, 5)
  })
})
