import { weightedMix, axpy, scale } from '../shared/math/vector'
import { median, writeResult } from './common'

/**
 * Issue 3 performance target: mixing 1M-parameter vectors from 4 neighbours plus the optimizer
 * update, in JS, must stay below a few milliseconds. Measures the host-side work of one DPSGD
 * step with momentum (x_mix = Σ w_j x_j ; m = βm + g ; x = x_mix − γm) on Float32Arrays.
 */
export function runMixingBench(d = 1_000_000, neighbours = 4, reps = 30) {
  const rnd = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5)
  const x = rnd(d)
  const nb = Array.from({ length: neighbours }, () => rnd(d))
  const g = rnd(d)
  const m = new Float32Array(d)
  const out = new Float32Array(d)
  const w = Array(neighbours + 1).fill(1 / (neighbours + 1))
  const mix: number[] = []
  const opt: number[] = []
  for (let r = 0; r < reps + 3; r++) {
    const t0 = performance.now()
    weightedMix(out, w, [x, ...nb])
    const t1 = performance.now()
    scale(m, 0.9)
    axpy(m, 1, g)
    axpy(out, -0.01, m)
    const t2 = performance.now()
    if (r >= 3) {
      mix.push(t1 - t0)
      opt.push(t2 - t1)
    }
  }
  return { params: d, neighbours, reps, mixMsMedian: +median(mix).toFixed(3), optimizerMsMedian: +median(opt).toFixed(3), totalMsMedian: +(median(mix) + median(opt)).toFixed(3) }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runMixingBench()
  console.log(`mixing 1M params from 4 neighbours: ${r.mixMsMedian} ms; momentum update: ${r.optimizerMsMedian} ms (median of ${r.reps})`)
  console.log('wrote', writeResult('mixing', r))
}
