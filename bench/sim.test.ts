import { describe, expect, it } from 'vitest'
import { loadDatasetNode } from '../client/runtime/data-loader-node'
import { configWith } from '../shared/testing/harness'
import { parseSimArgs, runSimulation, type SimResult } from './sim-cli'

/**
 * The simulator end to end on a tiny synthetic run: real algorithm code, tfjs wasm, the in-memory
 * mesh. Checks the JSON contract of issue 3 and that the averaged model actually learned.
 */

const config = configWith({ dataset: 'synthetic', model: 'mlp', batchSize: 32, seed: 0 })

/** Accuracy of always answering the most frequent test label: "beats chance" means beating this. */
async function majorityRate(): Promise<number> {
  const test = await loadDatasetNode('synthetic', 'test')
  const counts = new Map<number, number>()
  for (const y of test.y) counts.set(y, (counts.get(y) ?? 0) + 1)
  return Math.max(...counts.values()) / test.count
}

function expectContract(r: SimResult, peers: number, algorithm: string): void {
  expect(r.config.algorithm).toBe(algorithm)
  expect(r.config.peers).toBe(peers)
  expect(r.diverged).toBe(false)
  expect(Number.isFinite(r.finalTestLoss)).toBe(true)
  expect(r.syncRounds).toBeGreaterThan(0)
  expect(r.bytesSentPerPeer).toHaveLength(peers)
  for (const b of r.bytesSentPerPeer) expect(b).toBeGreaterThan(0)
  expect(r.curve.length).toBeGreaterThan(0)
  for (const c of r.curve) {
    for (const k of ['step', 'samples', 'trainLoss', 'testAccuracy', 'consensusDistance', 'lr'] as const) expect(Number.isFinite(c[k])).toBe(true)
    expect(c.h === null || Number.isInteger(c.h)).toBe(true)
  }
  expect(r.finalTestAccuracy).toBe(r.curve.at(-1)!.testAccuracy)
}

describe('simulator (runSimulation)', () => {
  it('ssgd: 2 peers learn the synthetic task; replicas identical (consensus 0)', async () => {
    const chance = await majorityRate()
    const r = await runSimulation({ config: config({ algorithm: 'ssgd', totalSteps: 40, lr: 0.1, momentum: 0.9 }), peers: 2, evalEvery: 20 })
    expectContract(r, 2, 'ssgd')
    expect(r.syncRounds).toBe(40)
    expect(r.curve.map((c) => c.step)).toEqual([20, 40])
    // 40 steps × 2 peers × 32 samples.
    expect(r.curve.at(-1)!.samples).toBe(40 * 2 * 32)
    for (const c of r.curve) expect(c.consensusDistance).toBe(0)
    expect(r.finalTestAccuracy).toBeGreaterThan(chance + 0.1)
    expect(r.hogwild).toBeUndefined()
  })

  it('lap-sgd: 2 peers × 2 worker_threads updaters; the update budget ends the run', async () => {
    const chance = await majorityRate()
    const r = await runSimulation({
      config: config({ algorithm: 'lap-sgd', totalSteps: 96, lr: 0.1, updaters: 2, sync: { kind: 'constant', h: 8 } }),
      peers: 2, hogwild: 'worker',
    })
    expectContract(r, 2, 'lap-sgd')
    // Two real updater threads per peer ran (the --updaters flag reached the pool).
    expect(r.hogwild).toEqual({ kind: 'worker', updatersPerPeer: [2, 2] })
    // 96 local updates per peer in rounds of H = 8: 12 averagings, then the budget is spent.
    expect(r.syncRounds).toBe(12)
    expect(r.curve.at(-1)!.step).toBe(12)
    expect(r.curve.at(-1)!.h).toBe(8)
    expect(r.curve.at(-1)!.samples).toBe(2 * 96 * 32)
    // Hogwild threads race, so the result varies run to run (0.61–0.62 seen; majority class ≈ 0.46).
    expect(r.finalTestAccuracy).toBeGreaterThan(chance + 0.1)
  })

  it('lap-sgd with in-process updaters runs the same protocol', async () => {
    const r = await runSimulation({
      config: config({ algorithm: 'lap-sgd', totalSteps: 32, lr: 0.05, updaters: 3, sync: { kind: 'constant', h: 8 } }),
      peers: 2, hogwild: 'inprocess',
    })
    expectContract(r, 2, 'lap-sgd')
    expect(r.hogwild).toEqual({ kind: 'inprocess', updatersPerPeer: [3, 3] })
    expect(r.syncRounds).toBe(4)
  })
})

describe('simulator divergence rule', () => {
  it('a learning rate that blows the loss up stops the run early as diverged, saying when and why', async () => {
    const r = await runSimulation({ config: config({ algorithm: 'dpsgd', totalSteps: 200, lr: 40, momentum: 0.9 }), peers: 4, evalEvery: 50 })
    expect(r.diverged).toBe(true)
    expect(r.divergence).not.toBeNull()
    expect(r.divergence!.step).toBeLessThan(200)
    expect(r.divergence!.reason).toMatch(/loss|finite/)
    expect(r.curve.at(-1)!.step).toBe(r.divergence!.step)
  })
})

describe('simulator flags (parseSimArgs)', () => {
  it('maps flags onto the validated room config', () => {
    const a = parseSimArgs(['--algorithm', 'lap-sgd', '--peers', '3', '--updaters', '4', '--steps', '50', '--h', '5', '--hogwild', 'inprocess'])
    expect(a.peers).toBe(3)
    expect(a.hogwild).toBe('inprocess')
    expect(a.config.updaters).toBe(4)
    expect(a.config.totalSteps).toBe(50)
    expect(a.config.sync).toEqual({ kind: 'constant', h: 5 })
    expect(parseSimArgs(['--algorithm', 'lap-sgd']).hogwild).toBe('worker')
    expect(parseSimArgs(['--algorithm', 'ssgd', '--lr-scaling', 'linear']).config.lrScaling).toEqual({ kind: 'linear', referenceBatch: 256 })
    expect(parseSimArgs(['--algorithm', 'ssgd', '--lr-scaling', 'linear:64']).config.lrScaling).toEqual({ kind: 'linear', referenceBatch: 64 })
    expect(parseSimArgs(['--algorithm', 'dpsgd', '--link', 'wan']).config.link).toBe('wan')
    expect(parseSimArgs(['--algorithm', 'dpsgd']).config.link).toBe('lan')
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--link', 'satellite'])).toThrow(/link/)
  })

  it('short runs start: default warmups scale to --steps; --warmup and --schedule each change only their own field', () => {
    for (const algorithm of ['ssgd', 'local-sgd', 'local-adamw'])
      expect(parseSimArgs(['--algorithm', algorithm, '--steps', '80']).config.schedule.warmupSteps, algorithm).toBeLessThan(80)
    expect(parseSimArgs(['--algorithm', 'ssgd', '--steps', '80']).config.schedule).toEqual({ kind: 'cosine', warmupSteps: 3, minLr: 0 })
    expect(parseSimArgs(['--algorithm', 'ssgd', '--steps', '80', '--warmup', '8']).config.schedule).toEqual({ kind: 'cosine', warmupSteps: 8, minLr: 0 })
    expect(parseSimArgs(['--algorithm', 'ssgd', '--steps', '80', '--schedule', 'constant']).config.schedule).toEqual({ kind: 'constant', warmupSteps: 3 })
  })

  it('rejects bad values with the config field named', () => {
    expect(() => parseSimArgs(['--algorithm', 'lap-sgd', '--updaters', '99'])).toThrow(/updaters/)
    expect(() => parseSimArgs(['--algorithm', 'nope'])).toThrow(/algorithm/)
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--lr-scaling', 'linear'])).toThrow(/lrScaling/)
    expect(() => parseSimArgs(['--algorithm', 'ssgd', '--hogwild', 'gpu'])).toThrow(/--hogwild/)
    expect(() => parseSimArgs(['--algorithm', 'ssgd', '--faults', 'storm'])).toThrow(/--faults/)
  })
})

describe('simulator attacks (--attack, --attackers, --robust)', () => {
  it('parses the attack flags and refuses bad ones', () => {
    const a = parseSimArgs(['--algorithm', 'dpsgd', '--peers', '8', '--attack', 'alie:1.5', '--attackers', '2', '--robust', 'on'])
    expect(a.attack).toBe('alie:1.5')
    expect(a.attackers).toBe(2)
    expect(a.config.robust).toBe('on')
    expect(parseSimArgs(['--algorithm', 'dpsgd', '--attack', 'stale']).attackers).toBe(1)
    expect(parseSimArgs(['--algorithm', 'dpsgd']).config.robust).toBe('off')
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--attack', 'nope'])).toThrow(/unknown attack/)
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--attackers', '1'])).toThrow(/--attackers needs --attack/)
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--peers', '4', '--attack', 'scaled', '--attackers', '4'])).toThrow(/--attackers/)
    expect(() => parseSimArgs(['--algorithm', 'dpsgd', '--robust', 'maybe'])).toThrow(/robust/)
  })

  it('the last peers attack; the honest peers are reported apart', async () => {
    const r = await runSimulation({ config: config({ algorithm: 'dpsgd', totalSteps: 20 }), peers: 4, evalEvery: 20, attack: 'sign-flip', attackers: 1 })
    expect(r.attack).toEqual({ name: 'sign-flip', param: 1, level: 'model', attackers: ['p3'] })
    expect(r.perPeerAccuracy).toHaveLength(4)
    expect(r.honest.peers).toEqual(['p0', 'p1', 'p2'])
    expect(r.honest.minAccuracy).toBe(Math.min(...r.perPeerAccuracy.slice(0, 3)))
    expect(r.honest.meanAccuracy).toBeCloseTo(r.perPeerAccuracy.slice(0, 3).reduce((a, b) => a + b) / 3, 6)
    expect(r.stepsPerSec).toBeGreaterThan(0)
    const clean = await runSimulation({ config: config({ algorithm: 'dpsgd', totalSteps: 20 }), peers: 4, evalEvery: 20 })
    expect(clean.attack).toBeNull()
    expect(clean.honest.peers).toHaveLength(4)
  })
})
