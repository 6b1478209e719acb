import { describe, expect, it } from 'vitest'
import { Rng } from './rng'
import { testSubsetIndices } from './subset'

/** Labels with uneven class sizes: class c has 100 + 37·c examples, shuffled. */
function unevenLabels(): Uint8Array {
  const out: number[] = []
  for (let c = 0; c < 10; c++) for (let k = 0; k < 100 + 37 * c; k++) out.push(c)
  return new Rng(3).shuffle(Uint8Array.from(out))
}

function counts(labels: Uint8Array, idx: Uint32Array): number[] {
  const h = new Array<number>(10).fill(0)
  for (const i of idx) h[labels[i]]++
  return h
}

describe('testSubsetIndices', () => {
  it('is the same pick on every call (every tab and Node peer computes it alone)', () => {
    const y = unevenLabels()
    const a = testSubsetIndices(y, 10, 500)
    const b = testSubsetIndices(Uint8Array.from(y), 10, 500)
    expect(Array.from(a)).toEqual(Array.from(b))
  })

  it('has exactly n distinct, ascending, in-range indices', () => {
    const y = unevenLabels()
    for (const n of [1, 99, 500, 2000]) {
      const idx = testSubsetIndices(y, 10, n)
      expect(idx.length).toBe(n)
      for (let k = 1; k < idx.length; k++) expect(idx[k]).toBeGreaterThan(idx[k - 1])
      expect(idx[idx.length - 1]).toBeLessThan(y.length)
    }
  })

  it('keeps each class in proportion to the split (within one example)', () => {
    const y = unevenLabels()
    const n = 500
    const h = counts(y, testSubsetIndices(y, 10, n))
    // Class c holds (100 + 37c) / 2665 of the split: 18.8 … 81.3 of 500.
    for (let c = 0; c < 10; c++) expect(Math.abs(h[c] - (n * (100 + 37 * c)) / y.length)).toBeLessThan(1)
  })

  it('is not simply the first n (a prefix would follow the split order, not its classes)', () => {
    const y = new Uint8Array(1000)
    for (let i = 0; i < 1000; i++) y[i] = i < 500 ? 0 : 1 + (i % 9)
    const h = counts(y, testSubsetIndices(y, 10, 100))
    expect(h[0]).toBe(50)
  })

  it('is the whole split once n reaches its size, and refuses bad input', () => {
    const y = unevenLabels()
    expect(testSubsetIndices(y, 10, y.length + 5).length).toBe(y.length)
    expect(() => testSubsetIndices(y, 10, -1)).toThrow(/bad size/)
    expect(() => testSubsetIndices(Uint8Array.from([0, 12]), 10, 1)).toThrow(/label 12/)
  })
})
