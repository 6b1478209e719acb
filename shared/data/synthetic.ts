import type { Dataset } from './format'
import { Rng } from './rng'

/**
 * Teacher–student task (docs/algorithms.md "Calibrations"): x ~ N(0, I_d), label =
 * argmax of a random ReLU teacher d-h-c with W1 ~ N(0, 1/d), W2 ~ N(0, 1/h). Same distribution
 * as the reference, not the same numbers (numpy's PCG64 stream is not reproduced).
 */
export interface SyntheticOptions {
  seed?: number
  d?: number
  h?: number
  c?: number
  train?: number
  test?: number
  labelNoise?: number
}

export function makeSynthetic(opts: SyntheticOptions = {}): { train: Dataset; test: Dataset } {
  const { seed = 0, d = 32, h = 64, c = 10, train = 8192, test = 2048, labelNoise = 0 } = opts
  const rng = new Rng(seed)
  const w1 = new Float64Array(d * h)
  const w2 = new Float64Array(h * c)
  for (let i = 0; i < w1.length; i++) w1[i] = rng.normal() / Math.sqrt(d)
  for (let i = 0; i < w2.length; i++) w2[i] = rng.normal() / Math.sqrt(h)
  const hidden = new Float64Array(h)
  const label = (x: Float32Array, off: number): number => {
    for (let j = 0; j < h; j++) {
      let s = 0
      for (let k = 0; k < d; k++) s += x[off + k] * w1[k * h + j]
      hidden[j] = s > 0 ? s : 0
    }
    let best = 0
    let bestV = -Infinity
    for (let o = 0; o < c; o++) {
      let s = 0
      for (let j = 0; j < h; j++) s += hidden[j] * w2[j * c + o]
      if (s > bestV) {
        bestV = s
        best = o
      }
    }
    return best
  }
  const make = (n: number): Dataset => {
    const x = new Float32Array(n * d)
    for (let i = 0; i < x.length; i++) x[i] = rng.normal()
    const y = new Uint8Array(n)
    for (let i = 0; i < n; i++) y[i] = label(x, i * d)
    return { count: n, rows: 1, cols: d, numClasses: c, dtype: 'float32', x, y }
  }
  const tr = make(train)
  const te = make(test)
  if (labelNoise > 0) for (let i = 0; i < tr.count; i++) if (rng.uniform() < labelNoise) tr.y[i] = rng.int(c)
  return { train: tr, test: te }
}
