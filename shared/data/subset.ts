import { Rng } from './rng'

/**
 * The test examples every peer of a room measures accuracy on (the room's `testSubset`).
 *
 * A stratified pick: each class gets its share of `n` in proportion to its frequency in the
 * split (largest remainders break ties, lowest class first), and within a class the examples
 * come from a shuffle with a fixed seed. Every tab, Node peer and the server compute the same
 * indices from the labels and `n` alone, and the seed is not the room's, so two rooms or runs
 * with the same `testSubset` are measured on the same examples and their accuracies compare.
 * Returned in ascending order, so the served bytes keep the split's order.
 */
export const TEST_SUBSET_SEED = 0x7e57

export function testSubsetIndices(labels: Uint8Array, numClasses: number, n: number): Uint32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`test subset: bad size ${n}`)
  const total = labels.length
  if (n >= total) return Uint32Array.from({ length: total }, (_, i) => i)
  const members: number[][] = Array.from({ length: numClasses }, () => [])
  for (let i = 0; i < total; i++) {
    const l = labels[i]
    if (l >= numClasses) throw new Error(`test subset: label ${l} ≥ numClasses ${numClasses}`)
    members[l].push(i)
  }
  // Largest-remainder apportionment of n over the classes.
  const exact = members.map((m) => (n * m.length) / total)
  const quota = exact.map(Math.floor)
  let left = n - quota.reduce((a, b) => a + b, 0)
  const byRemainder = exact.map((e, c) => ({ c, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.c - b.c)
  for (const { c } of byRemainder) {
    if (left === 0) break
    if (quota[c] < members[c].length) {
      quota[c]++
      left--
    }
  }
  const rng = new Rng(TEST_SUBSET_SEED)
  const out: number[] = []
  for (let c = 0; c < numClasses; c++) {
    const shuffled = rng.shuffle(Uint32Array.from(members[c]))
    for (let k = 0; k < quota[c]; k++) out.push(shuffled[k])
  }
  return Uint32Array.from(out).sort()
}
