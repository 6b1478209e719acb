import { describe, expect, it } from 'vitest'
import { parsePartition } from '../config'
import { decodeDataset, encodeDataset, HEADER_BYTES, subsetDataset, type Dataset } from './format'
import { partitionAll, partitionIndices } from './partition'
import { makeSynthetic } from './synthetic'

function imgSet(n: number): Dataset {
  return {
    count: n, rows: 28, cols: 28, numClasses: 10, dtype: 'uint8',
    x: Uint8Array.from({ length: n * 784 }, (_, i) => (i * 31) % 256),
    y: Uint8Array.from({ length: n }, (_, i) => (i * 7) % 10),
  }
}

describe('dataset format', () => {
  it('round-trips uint8 and float32 datasets', () => {
    for (const d of [imgSet(5), makeSynthetic({ train: 100, test: 10 }).train]) {
      const back = decodeDataset(encodeDataset(d))
      expect(back.count).toBe(d.count)
      expect([back.rows, back.cols, back.numClasses, back.dtype]).toEqual([d.rows, d.cols, d.numClasses, d.dtype])
      expect(Array.from(back.x)).toEqual(Array.from(d.x))
      expect(Array.from(back.y)).toEqual(Array.from(d.y))
    }
  })

  it('round-trips an empty dataset', () => {
    const d = { ...imgSet(0) }
    expect(decodeDataset(encodeDataset(d)).count).toBe(0)
  })

  it('rejects corrupted, truncated and foreign input', () => {
    const b = encodeDataset(imgSet(3))
    const flip = b.slice()
    flip[HEADER_BYTES + 100] ^= 1
    expect(() => decodeDataset(flip)).toThrow(/checksum/)
    expect(() => decodeDataset(b.subarray(0, b.length - 1))).toThrow(/bytes/)
    expect(() => decodeDataset(b.subarray(0, 10))).toThrow(/header/)
    const magic = b.slice()
    magic[0] = 0
    expect(() => decodeDataset(magic)).toThrow(/magic/)
    const ver = b.slice()
    ver[4] = 9
    expect(() => decodeDataset(ver)).toThrow(/version/)
    // A label ≥ numClasses, even with a valid checksum, is rejected.
    const d = imgSet(3)
    expect(() => encodeDataset({ ...d, y: Uint8Array.from([0, 1, 10]) })).toThrow(/label/)
  })

  it('subsets by index', () => {
    const d = imgSet(10)
    const s = subsetDataset(d, [9, 0])
    expect(s.count).toBe(2)
    expect(Array.from(s.y)).toEqual([d.y[9], d.y[0]])
    expect(Array.from(s.x.subarray(0, 784))).toEqual(Array.from(d.x.subarray(9 * 784, 10 * 784)))
  })
})

describe('synthetic task', () => {
  it('is deterministic per seed and has the reference sizes', () => {
    const a = makeSynthetic({ seed: 3 })
    const b = makeSynthetic({ seed: 3 })
    expect([a.train.count, a.test.count, a.train.cols]).toEqual([8192, 2048, 32])
    expect(Array.from(a.train.y.subarray(0, 50))).toEqual(Array.from(b.train.y.subarray(0, 50)))
    expect(makeSynthetic({ seed: 4 }).train.x[0]).not.toBe(a.train.x[0])
    expect(new Set(a.train.y).size).toBeGreaterThan(5)
    let s = 0, s2 = 0
    for (const v of a.train.x) (s += v), (s2 += v * v)
    expect(Math.abs(s / a.train.x.length)).toBeLessThan(0.02)
    expect(Math.abs(s2 / a.train.x.length - 1)).toBeLessThan(0.02)
  })
})

function labelsOf(n: number, K = 10): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 3)) % K)
}

function checkDisjointCover(shards: Uint32Array[], n: number): void {
  const seen = new Uint8Array(n)
  for (const s of shards) for (const i of s) {
    expect(seen[i]).toBe(0)
    seen[i] = 1
  }
  expect(seen.every((v) => v === 1)).toBe(true)
}

describe('partition', () => {
  const labels = labelsOf(5000)
  for (const p of ['iid', 'label-skew:2', 'label-skew:1', 'dirichlet:0.1', 'dirichlet:1.0']) {
    for (const peers of [1, 3, 8]) {
      it(`${p} with ${peers} peers: disjoint, covering, deterministic`, () => {
        const shards = partitionAll(labels, 10, parsePartition(p), peers, 42)
        expect(shards.length).toBe(peers)
        checkDisjointCover(shards, labels.length)
        const again = partitionIndices(labels, 10, parsePartition(p), peers - 1, peers, 42)
        expect(Array.from(again)).toEqual(Array.from(shards[peers - 1]))
      })
    }
  }

  it('iid shards are balanced and seed-dependent', () => {
    const s = partitionAll(labels, 10, { kind: 'iid' }, 3, 1)
    expect(s.map((x) => x.length)).toEqual([1667, 1667, 1666])
    expect(partitionAll(labels, 10, { kind: 'iid' }, 3, 2)[0][0]).not.toBe(s[0][0])
  })

  it('label-skew:C gives each peer exactly C classes when peers*C ≥ classes', () => {
    for (const [peers, C] of [[5, 2], [10, 1], [4, 3], [8, 2]]) {
      const shards = partitionAll(labels, 10, { kind: 'label-skew', classesPerPeer: C }, peers, 7)
      for (const s of shards) expect(new Set(Array.from(s, (i) => labels[i])).size).toBe(C)
    }
  })

  it('label-skew with fewer slots than classes is label-sorted (contiguous class ranges)', () => {
    const shards = partitionAll(labels, 10, { kind: 'label-skew', classesPerPeer: 1 }, 4, 7)
    checkDisjointCover(shards, labels.length)
    let prevMax = -1
    for (const s of shards) {
      const cls = Array.from(s, (i) => labels[i])
      expect(Math.min(...cls)).toBeGreaterThanOrEqual(prevMax)
      prevMax = Math.max(...cls)
      expect(new Set(cls).size).toBeLessThanOrEqual(4)
    }
  })

  it('dirichlet with small α is skewed, with large α near iid', () => {
    const skew = partitionAll(labels, 10, { kind: 'dirichlet', alpha: 0.05 }, 5, 3)
    const flat = partitionAll(labels, 10, { kind: 'dirichlet', alpha: 1000 }, 5, 3)
    const maxShare = (s: Uint32Array) => {
      const h = new Array(10).fill(0)
      for (const i of s) h[labels[i]]++
      return Math.max(...h) / Math.max(1, s.length)
    }
    expect(Math.max(...skew.map(maxShare))).toBeGreaterThan(0.4)
    for (const s of flat) expect(maxShare(s)).toBeLessThan(0.15)
  })

  it('rejects a bad peer index', () => {
    expect(() => partitionIndices(labels, 10, { kind: 'iid' }, 3, 3, 0)).toThrow(/peerIndex/)
  })
})
