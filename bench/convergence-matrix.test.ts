import { describe, expect, it } from 'vitest'
import { ALGORITHMS, allowedTopologies, parseRoomConfig } from '../shared/config'
import { loadDatasetNode } from '../client/runtime/data-loader-node'
import { runSimulation } from './sim-cli'

/**
 * The convergence matrix: every algorithm on every topology the config accepts for it, with 4
 * and 8 peers, each with its documented defaults (only the run length and the batch are set),
 * on the synthetic teacher–student task. Each cell must learn (test accuracy well above always
 * answering the majority class, training loss down) and must not diverge by the simulator's
 * rule (shared/divergence.ts). DecentLaM on the directed exponential graphs failed this
 * (diverged at step ~56) before it mixed with (W + Wᵀ)/2.
 */

const STEPS = 120
/** Above the majority-class rate; the weakest honest cells (local-adamw at its small default lr, lap-sgd, ad-psgd) reach about +0.10 to +0.14. */
const MARGIN = 0.06

async function majorityRate(): Promise<number> {
  const test = await loadDatasetNode('synthetic', 'test')
  const counts = new Map<number, number>()
  for (const y of test.y) counts.set(y, (counts.get(y) ?? 0) + 1)
  return Math.max(...counts.values()) / test.count
}

describe('convergence matrix (simulator, synthetic task, defaults)', () => {
  for (const algorithm of ALGORITHMS)
    for (const topology of allowedTopologies(algorithm))
      for (const peers of [4, 8])
        it(`${algorithm} on ${topology}, ${peers} peers`, async () => {
          const parsed = parseRoomConfig({ algorithm, topology, dataset: 'synthetic', model: 'mlp', totalSteps: STEPS, batchSize: 32, seed: 1 })
          if (!parsed.ok) throw new Error(parsed.error)
          // lap-sgd's simulator step is a round of H local updates: STEPS / H rounds in all.
          const rounds = algorithm === 'lap-sgd' && parsed.config.sync.kind === 'constant' ? STEPS / parsed.config.sync.h : STEPS
          const r = await runSimulation({ config: parsed.config, peers, hogwild: 'inprocess', evalEvery: Math.floor(rounds / 4) })
          expect(r.curve.length).toBeGreaterThanOrEqual(4)
          expect(r.divergence).toBeNull()
          expect(r.diverged).toBe(false)
          expect(r.finalTestAccuracy).toBeGreaterThan((await majorityRate()) + MARGIN)
          expect(r.curve.at(-1)!.trainLoss).toBeLessThan(r.curve[0].trainLoss)
        })
})
