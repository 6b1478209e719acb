import { VectorArena } from '../shared/math/arena'
import { weightedMix, axpy, scale, mixInto, momentumStep } from '../shared/math/vector'
import { load, median, writeResult } from './common'

/**
 * Issue 3 performance target: mixing 1M-parameter vectors from 4 neighbours plus the optimizer
 * update, in JS, must stay below a few milliseconds. Measures the host-side work of one DPSGD
 * step with momentum (x_mix = Σ w_j x_j ; m = βm + g ; x = x_mix − γm) on Float32Arrays, in the
 * original multi-pass form (weightedMix + scale/axpy) and with the fused single-pass kernels
 * (mixInto + momentumStep), and with the WebAssembly SIMD kernels of shared/math/arena.ts that
 * DPSGD uses: `arena` is the algorithm's real path (x, m and the mixed model live in the arena,
 * the 4 neighbour payloads and the gradient arrive as outside arrays and are staged, one memcpy
 * each); `arenaResident` has every operand in the arena already (the kernels alone).
 */
export function runMixingBench(d = 1_000_000, neighbours = 4, reps = 30) {
  const rnd = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5)
  const x = rnd(d)
  const nb = Array.from({ length: neighbours }, () => rnd(d))
  const g = rnd(d)
  const m = new Float32Array(d)
  const out = new Float32Array(d)
  const w = Array(neighbours + 1).fill(1 / (neighbours + 1))
  const inputs = [x, ...nb]
  const t = {
    mix: [] as number[], opt: [] as number[], fusedMix: [] as number[], fusedOpt: [] as number[],
    arenaMix: [] as number[], arenaOpt: [] as number[], residentMix: [] as number[], residentOpt: [] as number[],
  }
  const arena = new VectorArena(d, { slots: 3 + neighbours + 1 }) // x, m, mixed, resident copies, g
  const [ax, am, amixed] = [arena.alloc(), arena.alloc(), arena.alloc()]
  ax.set(x)
  const resident = Array.from({ length: neighbours }, (_, j) => {
    const v = arena.alloc()
    v.set(nb[j])
    return v
  })
  const ag = arena.alloc()
  ag.set(g)
  const loadBefore = load()
  for (let r = 0; r < reps + 3; r++) {
    const t0 = performance.now()
    weightedMix(out, w, inputs)
    const t1 = performance.now()
    scale(m, 0.9)
    axpy(m, 1, g)
    axpy(out, -0.01, m)
    const t2 = performance.now()
    mixInto(out, w, inputs)
    const t3 = performance.now()
    momentumStep(out, m, g, 0.9, 0.01)
    const t4 = performance.now()
    arena.mix(amixed, w, [ax, ...nb])
    const t5 = performance.now()
    arena.momentum(ax, am, g, 0.9, 0.01, 0, amixed)
    const t6 = performance.now()
    arena.mix(amixed, w, [ax, ...resident])
    const t7 = performance.now()
    arena.momentum(ax, am, ag, 0.9, 0.01, 0, amixed)
    const t8 = performance.now()
    if (r >= 3) {
      t.arenaMix.push(t5 - t4)
      t.arenaOpt.push(t6 - t5)
      t.residentMix.push(t7 - t6)
      t.residentOpt.push(t8 - t7)
      t.mix.push(t1 - t0)
      t.opt.push(t2 - t1)
      t.fusedMix.push(t3 - t2)
      t.fusedOpt.push(t4 - t3)
    }
  }
  const r3 = (v: number) => +v.toFixed(3)
  return {
    params: d, neighbours, reps,
    mixMsMedian: r3(median(t.mix)), optimizerMsMedian: r3(median(t.opt)), totalMsMedian: r3(median(t.mix) + median(t.opt)),
    fused: {
      mixMsMedian: r3(median(t.fusedMix)), optimizerMsMedian: r3(median(t.fusedOpt)),
      totalMsMedian: r3(median(t.fusedMix) + median(t.fusedOpt)),
      totalMsMin: r3(Math.min(...t.fusedMix) + Math.min(...t.fusedOpt)),
    },
    arena: {
      simd: arena.simd,
      mixMsMedian: r3(median(t.arenaMix)), optimizerMsMedian: r3(median(t.arenaOpt)),
      totalMsMedian: r3(median(t.arenaMix) + median(t.arenaOpt)),
      totalMsMin: r3(Math.min(...t.arenaMix) + Math.min(...t.arenaOpt)),
    },
    arenaResident: {
      mixMsMedian: r3(median(t.residentMix)), optimizerMsMedian: r3(median(t.residentOpt)),
      totalMsMedian: r3(median(t.residentMix) + median(t.residentOpt)),
    },
    load: { before: loadBefore, after: load() },
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runMixingBench()
  console.log(`mixing 1M params from 4 neighbours: multi-pass ${r.mixMsMedian} ms + momentum ${r.optimizerMsMedian} ms; ` +
    `fused JS ${r.fused.mixMsMedian} ms + ${r.fused.optimizerMsMedian} ms; ` +
    `wasm simd=${r.arena.simd} (DPSGD path, neighbours + gradient staged) ${r.arena.mixMsMedian} ms + ${r.arena.optimizerMsMedian} ms = ${r.arena.totalMsMedian} ms; ` +
    `all operands resident ${r.arenaResident.mixMsMedian} ms + ${r.arenaResident.optimizerMsMedian} ms ` +
    `(median of ${r.reps}; loadavg ${r.load.before.join('/')})`)
  console.log('wrote', writeResult('mixing', r))
}
