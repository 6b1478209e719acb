/**
 * Coordinate-wise trimmed mean, a robust combiner of the all-reduce family (docs/algorithms.md
 * "Robust aggregation"; `robust: 'on'`): local-sgd, local-adamw and lap-sgd combine their
 * all-gathered models with it, and SSGD its resync of [x, m], its batch-size slot and the center
 * of a round in which a member is out of sync. A sum over a ring cannot be robust (every hop only
 * sees partial sums), so robust mode all-gathers the members' vectors and each member combines
 * them here.
 *
 * SSGD's gradients use centered clipping instead (centered-clip.ts): on label-skewed data the
 * per-coordinate trim drops honest extremes and biased the mean (docs/security.md "The attacks
 * benchmark"). The trimmed mean stays where there is no common center to clip around: it needs no
 * state and no radius, and it is a pure function of the received set, so members that received
 * the same set compute bit-identical results. Per coordinate the result stays within the range of
 * the honest values as long as at most `b` members are hostile.
 *
 * Trim: `b = ⌊n / 4⌋`, at least 1 for n ≥ 3 (TRIM_FRACTION): up to a quarter of the members may be
 * hostile; n = 3 is the median, n = 4 the mean of the middle two. n ≤ 2 is the plain mean: with
 * one or two values there is no majority to tell the honest one by (trimming one of each end of
 * two values leaves nothing), so robust mode cannot help a pair.
 */

/** The fraction of members trimmed at each end (b = ⌊TRIM_FRACTION · n⌋, at least 1 for n ≥ 3). */
export const TRIM_FRACTION = 0.25

/** Values dropped at each end per coordinate for n values: ⌊f · n⌋, at least 1 for n ≥ 3, 0 for n ≤ 2; always n − 2b ≥ 1. */
export function trimCount(n: number, fraction = TRIM_FRACTION): number {
  if (n <= 2) return 0
  const b = Math.max(1, Math.floor(fraction * n))
  return Math.min(b, Math.floor((n - 1) / 2))
}

/**
 * out[i − from] = mean of vectors[·][i] without the b smallest and b largest (ties are dropped by
 * count, whichever member sent them), for i in [from, to). The kept values are added in sorted
 * order in float64, so the result does not depend on the order of `vectors`. Every vector must
 * be finite and at least `to` long (the caller validates). `out` defaults to a new array.
 */
export function trimmedMean(
  vectors: readonly Float32Array[], b = trimCount(vectors.length), from = 0, to = vectors[0]?.length ?? 0,
  out: Float32Array = new Float32Array(to - from),
): Float32Array {
  const n = vectors.length
  if (n === 0) throw new Error('trimmedMean: no vectors')
  if (b < 0 || n - 2 * b < 1) throw new Error(`trimmedMean: cannot trim ${b} of ${n} at each end`)
  const keep = n - 2 * b
  const col = new Float64Array(n)
  for (let i = from; i < to; i++) {
    for (let k = 0; k < n; k++) col[k] = vectors[k][i]
    if (b > 0) insertionSort(col)
    let s = 0
    for (let k = b; k < n - b; k++) s += col[k]
    out[i - from] = s / keep
  }
  return out
}

/** In place, ascending; n is a group's size (small), where insertion sort beats a comparator sort. */
function insertionSort(a: Float64Array): void {
  for (let i = 1; i < a.length; i++) {
    const v = a[i]
    let j = i - 1
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j]
      j--
    }
    a[j + 1] = v
  }
}
