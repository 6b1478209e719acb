import { describe, expect, it } from 'vitest'
import { TOPOLOGIES, type TopologyName } from './config'
import { foldMissing, isInitiator, log2Ceil, mixingMatrix, mixingWeights, neighbors, symmetricMixingWeights, symmetricNeighbors } from './topology'
import { Rng } from './testing/random'

const ids = (n: number) => Array.from({ length: n }, (_, i) => `p${String(i).padStart(3, '0')}`)
const UNDIRECTED: TopologyName[] = ['ring', 'torus', 'clique', 'star']

function connected(W: number[][]): boolean {
  const seen = new Set([0])
  const stack = [0]
  while (stack.length) {
    const i = stack.pop()!
    W[i].forEach((w, j) => { if (w > 0 && !seen.has(j)) { seen.add(j); stack.push(j) } })
  }
  return seen.size === W.length
}

function checkDoublyStochastic(W: number[][]) {
  const n = W.length
  for (let i = 0; i < n; i++) {
    expect(W[i].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12)
    expect(W.reduce((a, r) => a + r[i], 0)).toBeCloseTo(1, 12)
    for (const w of W[i]) expect(w).toBeGreaterThanOrEqual(0)
  }
}

describe('topology', () => {
  it('MH is symmetric, doubly stochastic, positive self weight and connected for every undirected graph and n', () => {
    for (const topo of UNDIRECTED)
      for (let n = 1; n <= 17; n++) {
        const W = mixingMatrix(topo, ids(n))
        checkDoublyStochastic(W)
        for (let i = 0; i < n; i++) {
          expect(W[i][i]).toBeGreaterThan(0)
          for (let j = 0; j < n; j++) expect(W[i][j]).toBeCloseTo(W[j][i], 14)
        }
        expect(connected(W)).toBe(true)
      }
  })

  it('known weights: ring 1/3, torus 1/5, n=2 halves, n=1 identity, exponential 1/(τ+1)', () => {
    expect(mixingMatrix('ring', ids(8))[0][1]).toBeCloseTo(1 / 3)
    expect(mixingMatrix('torus', ids(16))[0][0]).toBeCloseTo(1 / 5)
    expect(mixingMatrix('ring', ids(2))).toEqual([[0.5, 0.5], [0.5, 0.5]])
    expect(mixingMatrix('exponential', ids(1))).toEqual([[1]])
    const e = mixingWeights('exponential', ids(8), 'p000')
    expect(e.self).toBeCloseTo(1 / 4)
    expect([...e.in.keys()].sort()).toEqual(['p004', 'p006', 'p007'])
    expect(neighbors('exponential', ids(8), 'p000').sendTo).toEqual(['p001', 'p002', 'p004'])
    expect(neighbors('star', ids(5), 'p003', 0, 'p002').sendTo).toEqual(['p002'])
  })

  it('directed graphs are circulant: doubly stochastic, in-sets mirror out-sets', () => {
    for (const topo of ['exponential', 'one-peer-exponential'] as const)
      for (let n = 1; n <= 13; n++)
        for (let step = 0; step < 5; step++) {
          const P = ids(n)
          checkDoublyStochastic(mixingMatrix(topo, P, step))
          for (const p of P)
            for (const q of neighbors(topo, P, p, step).sendTo)
              expect(neighbors(topo, P, q, step).receiveFrom).toContain(p)
        }
  })

  it('symmetric versions: (W + Wᵀ)/2 over the same edges, both directions; undirected graphs unchanged', () => {
    for (const topo of TOPOLOGIES)
      for (let n = 1; n <= 13; n++)
        for (let step = 0; step < 4; step++) {
          const P = ids(n)
          const W = mixingMatrix(topo, P, step)
          const S = mixingMatrix(topo, P, step, undefined, { symmetric: true })
          checkDoublyStochastic(S)
          for (let i = 0; i < n; i++)
            for (let j = 0; j < n; j++) expect(S[i][j]).toBeCloseTo((W[i][j] + W[j][i]) / 2, 14)
          for (const p of P) {
            const nb = symmetricNeighbors(topo, P, p, step)
            expect(nb.sendTo).toEqual(nb.receiveFrom)
            const plain = neighbors(topo, P, p, step)
            expect(new Set(nb.sendTo)).toEqual(new Set([...plain.sendTo, ...plain.receiveFrom]))
            expect([...symmetricMixingWeights(topo, P, p, step).in.keys()].sort()).toEqual([...nb.receiveFrom].sort())
          }
        }
  })

  it("heavy-ball on the gossip correction (DecentLaM's consensus dynamics) blows up with directed W, contracts with (W + Wᵀ)/2", () => {
    // DecentLaM's disagreement y (x minus the mean, no gradients) follows
    // y ← y − (I − W_k) y + β (y − y_prev): a second-order recursion per eigenvalue of W.
    const run = (topo: TopologyName, n: number, symmetric: boolean): number => {
      const P = ids(n)
      const rng = new Rng(n)
      let y = P.map(() => rng.gaussian())
      const mean = y.reduce((a, b) => a + b, 0) / n
      y = y.map((v) => v - mean)
      let prev = y.slice()
      for (let k = 0; k < 200; k++) {
        const W = mixingMatrix(topo, P, k, undefined, { symmetric })
        const next = y.map((v, i) => W[i].reduce((a, w, j) => a + w * y[j], 0) + 0.9 * (v - prev[i]))
        prev = y
        y = next
      }
      return Math.sqrt(y.reduce((a, v) => a + v * v, 0))
    }
    for (const topo of ['exponential', 'one-peer-exponential'] as const)
      for (const n of [4, 8]) {
        expect(run(topo, n, true)).toBeLessThan(1e-3)
        if (topo === 'exponential') expect(run(topo, n, false)).toBeGreaterThan(1e3)
      }
    for (const topo of ['ring', 'torus'] as const) expect(run(topo, 8, false)).toBeLessThan(1e-3)
  })

  it('one-peer exponential averages exactly after log2 n steps for n a power of two; preserves the mean otherwise', () => {
    for (const n of [2, 4, 8, 16, 5, 6, 12]) {
      const P = ids(n)
      const rng = new Rng(n)
      let x = P.map(() => rng.gaussian())
      const mean0 = x.reduce((a, b) => a + b, 0) / n
      for (let step = 0; step < log2Ceil(n); step++) {
        const W = mixingMatrix('one-peer-exponential', P, step)
        x = W.map((row) => row.reduce((a, w, j) => a + w * x[j], 0))
      }
      expect(x.reduce((a, b) => a + b, 0) / n).toBeCloseTo(mean0, 12)
      if ((n & (n - 1)) === 0) for (const v of x) expect(v).toBeCloseTo(mean0, 12)
    }
  })

  it('stays valid and re-forms after any seeded sequence of joins and leaves', () => {
    const rng = new Rng(7)
    let peers = ids(6)
    let next = 6
    for (let k = 0; k < 80; k++) {
      if (peers.length > 1 && rng.next() < 0.5) peers = peers.filter((_, i) => i !== rng.int(peers.length))
      else peers = [...peers, `p${String(next++).padStart(3, '0')}`]
      for (const topo of TOPOLOGIES) {
        const W = mixingMatrix(topo, peers, k)
        checkDoublyStochastic(W)
        if (UNDIRECTED.includes(topo)) {
          expect(connected(W)).toBe(true)
          for (let i = 0; i < W.length; i++) for (let j = 0; j < W.length; j++) expect(W[i][j]).toBeCloseTo(W[j][i], 14)
        }
      }
    }
  })

  it('ring re-stitches after a leave: i−1 and i+1 become neighbours', () => {
    const P = ids(5).filter((p) => p !== 'p002')
    expect(neighbors('ring', P, 'p001').sendTo).toContain('p003')
  })

  it('foldMissing moves the weight onto self and keeps the row stochastic', () => {
    const w = mixingWeights('ring', ids(8), 'p000')
    const f = foldMissing(w, ['p001'])
    expect(f.self).toBeCloseTo(2 / 3)
    expect(f.in.has('p001')).toBe(false)
    expect(f.self + [...f.in.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14)
    expect(isInitiator('a', 'b')).toBe(true)
    expect(isInitiator('b', 'a')).toBe(false)
  })
})
