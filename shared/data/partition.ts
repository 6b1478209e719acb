import type { Partition } from '../config'
import { Rng } from './rng'

/**
 * Deterministic sharding: every peer computes the same assignment from (labels, seed, peerCount)
 * and keeps only its own part, so shards are disjoint and cover the training set without any
 * coordination.
 *
 * - iid: a seeded permutation split into near-equal contiguous parts.
 * - label-skew:C: if peerCount*C ≥ numClasses, peer i holds exactly the C classes
 *   (i*C + k) mod K, k < C, and each class is split evenly among its holders. With fewer slots
 *   than classes that would drop data, so the shards are label-sorted instead (the reference's
 *   `shards(hetero=True)`): sort by label, split contiguously; each peer then sees only a
 *   contiguous run of about K/peerCount classes.
 * - dirichlet:α: per class, proportions p ~ Dir(α·1) over peers; the class is split by p.
 */
export function partitionIndices(
  labels: Uint8Array,
  numClasses: number,
  partition: Partition,
  peerIndex: number,
  peerCount: number,
  seed: number,
): Uint32Array {
  return partitionAll(labels, numClasses, partition, peerCount, seed)[checkPeer(peerIndex, peerCount)]
}

/** All shards at once (the simulator needs every peer's shard; tests check invariants). */
export function partitionAll(
  labels: Uint8Array,
  numClasses: number,
  partition: Partition,
  peerCount: number,
  seed: number,
): Uint32Array[] {
  if (!Number.isInteger(peerCount) || peerCount < 1) throw new Error(`partition: bad peerCount ${peerCount}`)
  const rng = new Rng(seed ^ 0x5eed5a1d)
  switch (partition.kind) {
    case 'iid':
      return splitEven(rng.permutation(labels.length), peerCount)
    case 'label-skew':
      return labelSkew(labels, numClasses, Math.max(1, Math.min(numClasses, partition.classesPerPeer)), peerCount, rng)
    case 'dirichlet':
      return dirichlet(labels, numClasses, partition.alpha, peerCount, rng)
  }
}

function checkPeer(peerIndex: number, peerCount: number): number {
  if (!Number.isInteger(peerIndex) || peerIndex < 0 || peerIndex >= peerCount)
    throw new Error(`partition: peerIndex ${peerIndex} not in [0, ${peerCount})`)
  return peerIndex
}

/** numpy.array_split semantics: the first (len % n) parts get one extra element. */
function splitEven(a: Uint32Array, n: number): Uint32Array[] {
  const base = Math.floor(a.length / n)
  const extra = a.length % n
  const out: Uint32Array[] = []
  let at = 0
  for (let i = 0; i < n; i++) {
    const len = base + (i < extra ? 1 : 0)
    out.push(a.slice(at, at + len))
    at += len
  }
  return out
}

function byClass(labels: Uint8Array, numClasses: number, rng: Rng): Uint32Array[] {
  const counts = new Array<number>(numClasses).fill(0)
  for (const l of labels) {
    if (l >= numClasses) throw new Error(`partition: label ${l} ≥ numClasses ${numClasses}`)
    counts[l]++
  }
  const out = counts.map((c) => new Uint32Array(c))
  const fill = new Array<number>(numClasses).fill(0)
  for (let i = 0; i < labels.length; i++) out[labels[i]][fill[labels[i]]++] = i
  for (const c of out) rng.shuffle(c)
  return out
}

function concat(parts: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(parts.reduce((s, p) => s + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function labelSkew(labels: Uint8Array, K: number, C: number, n: number, rng: Rng): Uint32Array[] {
  const classes = byClass(labels, K, rng)
  if (n * C < K) {
    // Label-sorted (stable in class order; within a class the seeded shuffle order).
    return splitEven(concat(classes), n)
  }
  const holders: number[][] = Array.from({ length: K }, () => [])
  for (let i = 0; i < n; i++) for (let k = 0; k < C; k++) holders[(i * C + k) % K].push(i)
  const parts: Uint32Array[][] = Array.from({ length: n }, () => [])
  for (let c = 0; c < K; c++) {
    const split = splitEven(classes[c], holders[c].length)
    holders[c].forEach((peer, j) => parts[peer].push(split[j]))
  }
  return parts.map((p) => rng.shuffle(concat(p)))
}

function dirichlet(labels: Uint8Array, K: number, alpha: number, n: number, rng: Rng): Uint32Array[] {
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new Error(`partition: dirichlet α must be > 0, got ${alpha}`)
  const classes = byClass(labels, K, rng)
  const parts: Uint32Array[][] = Array.from({ length: n }, () => [])
  for (let c = 0; c < K; c++) {
    const g = Array.from({ length: n }, () => rng.gamma(alpha))
    const total = g.reduce((s, v) => s + v, 0)
    const idx = classes[c]
    let prev = 0
    let acc = 0
    for (let i = 0; i < n; i++) {
      acc += total > 0 ? g[i] / total : 1 / n
      // The last peer takes the remainder so rounding never drops or duplicates an example.
      const end = i === n - 1 ? idx.length : Math.min(idx.length, Math.round(acc * idx.length))
      parts[i].push(idx.slice(prev, end))
      prev = Math.max(prev, end)
    }
  }
  return parts.map((p) => rng.shuffle(concat(p)))
}
