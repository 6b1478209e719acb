import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command } from 'commander'
import cliProgress from 'cli-progress'
import { ALGORITHM_DESCRIPTORS, ALGORITHM_FACTORIES } from '../shared/algorithms/index'
import type { AlgorithmInstance, HogwildPool, StepReport } from '../shared/algorithms/types'
import { DATASETS, MODELS, parsePartition, parseRoomConfig, ROBUST_MODES, type DatasetName, type ModelName, type RoomConfig } from '../shared/config'
import { DivergenceDetector, type Divergence } from '../shared/divergence'
import { ATTACK_NAMES, makeAttacker, parseAttack, type Attacker } from '../shared/testing/attacks'
import { FAULTS, type FaultName } from '../shared/testing/faults'
import { gradientFromComputes, InProcessHogwildPool } from '../shared/testing/inprocess-hogwild'
import { MemoryNetwork, type MemoryMesh } from '../shared/testing/memory-mesh'
import type { Dataset } from '../shared/data/format'
import { loadDatasetNode } from '../client/runtime/data-loader-node'
import { shardDataset } from '../client/runtime/data-loader'
import { createNodeHogwildPool } from '../client/runtime/hogwild/node-pool'
import { setupNodeBackend } from '../client/runtime/node-backend'
import { TfCompute, uploadDataset } from '../client/runtime/tf-compute'

/**
 * N peers in one process over the in-memory mesh, real algorithm code, tfjs on wasm.
 * `runSimulation` is the programmatic entry (tests, benchmarks); the CLI below only parses flags.
 */

/**
 * LAP-SGD's U updaters per simulated peer (docs/algorithms.md "Counting H over U updaters"):
 * - 'worker': the real pool, U worker_threads over a SharedArrayBuffer (what Node peers run);
 * - 'inprocess': U interleaved async updaters in this thread (deterministic, no thread start-up).
 */
export type HogwildKind = 'worker' | 'inprocess'

/** The simulator returns to the event loop at least this often (see runSimulation). */
const YIELD_EVERY_MS = 50

export interface SimOptions {
  config: RoomConfig
  peers: number
  /** Evaluate the averaged model every this many steps (default: a tenth of the run). */
  evalEvery?: number
  hogwild?: HogwildKind
  faults?: FaultName
  /**
   * Hostile peers (shared/testing/attacks.ts): `NAME` or `NAME:VALUE`. The last `attackers`
   * peers (default 1) run it; curves and `finalTestAccuracy` then cover the honest peers only.
   */
  attack?: string
  attackers?: number
  /** Evaluate on the first n test examples only (default: the whole test split). */
  evalSamples?: number
  onProgress?: (step: number, total: number, point: CurvePoint | null) => void
}

export interface CurvePoint { step: number; samples: number; trainLoss: number; testAccuracy: number; consensusDistance: number; lr: number; h: number | null }

export interface SimResult {
  config: RoomConfig & { peers: number }
  finalTestAccuracy: number
  finalTestLoss: number
  /** The rule of shared/divergence.ts fired (the run stopped there); `divergence` says when and why. */
  diverged: boolean
  divergence: Divergence | null
  syncRounds: number
  bytesSentPerPeer: number[]
  curve: CurvePoint[]
  /** lap-sgd only: how the updaters ran and how many each peer had at the end (worker threads alive, or U). */
  hogwild?: { kind: HogwildKind; updatersPerPeer: number[] }
  /** The attack run by the last peers, or null (a clean run). */
  attack: { name: string; param: number; level: Attacker['level']; attackers: string[] } | null
  /** Final test accuracy of each peer's own model (evalParams), in roster order, attackers included. */
  perPeerAccuracy: number[]
  /** The honest peers (all of them in a clean run): their final accuracies' mean and min. */
  honest: { peers: string[]; meanAccuracy: number; minAccuracy: number }
  /** Simulated swarm steps per second of wall time, counting only the steps (not evaluations). */
  stepsPerSec: number
  /**
   * The same per CPU-second of this process (all its threads) during the steps: the cost measure
   * that other work on a shared machine distorts least.
   */
  stepsPerCpuSec: number
}

/** The peers of one simulation: meshes, data shards, models, Hogwild pools, algorithm instances. */
interface Swarm {
  meshes: MemoryMesh[]
  /** Roster indices of the honest peers, and the attackers (the last peers). */
  honest: number[]
  attackers: Attacker[]
  computes: TfCompute[]
  instances: AlgorithmInstance[]
  pools: { pool: HogwildPool; running(): number; dispose(): void }[]
  dispose(): void
}

async function buildSwarm(opts: SimOptions, train: Dataset, signal: AbortSignal): Promise<Swarm> {
  const { config, peers } = opts
  const net = new MemoryNetwork({ seed: config.seed, faults: FAULTS[opts.faults ?? 'none'], link: config.link })
  const meshes = Array.from({ length: peers }, (_, i) => net.join(`p${i}`))
  const partition = parsePartition(config.partition)
  const k = attackerCount(opts)
  const attackers = meshes.map((_, i) => (opts.attack && i >= peers - k ? makeAttacker(opts.attack, { algorithm: config.algorithm, seed: config.seed * 7919 + i }) : null))
  const shards = meshes.map((_, i) => {
    const shard = shardDataset(train, partition, i, peers, config.seed)
    return attackers[i]?.data(shard) ?? shard
  })
  const computes = shards.map((shard, i) => new TfCompute({
    model: config.model as ModelName, train: shard, batchSize: config.batchSize, seed: config.seed, streamSeed: i,
  }))
  /** Extra computes of in-process Hogwild updaters (disposed with the others). */
  const updaterComputes: TfCompute[] = []
  const pools: Swarm['pools'] = []
  const swarm: Swarm = {
    meshes, computes, instances: [], pools,
    honest: meshes.map((_, i) => i).filter((i) => !attackers[i]), attackers: attackers.filter((a) => a !== null),
    dispose: () => {
      for (const p of pools) p.dispose()
      for (const c of [...computes, ...updaterComputes]) c.dispose()
    },
  }
  try {
    const hogwild = await Promise.all(meshes.map((_, i) => hogwildFor(opts, shards[i], computes[i], i, pools, updaterComputes)))
    swarm.instances = await Promise.all(meshes.map((mesh, i) => ALGORITHM_FACTORIES[config.algorithm]({
      mesh: attackers[i]?.mesh(mesh) ?? mesh, compute: attackers[i]?.compute(computes[i]) ?? computes[i], config, signal, log: () => {}, now: () => performance.now(),
      ...(hogwild[i] ? { hogwild: hogwild[i] } : {}),
    })))
    return swarm
  } catch (e) {
    swarm.dispose()
    throw e
  }
}

/** LAP-SGD's updaters for peer i (see HogwildKind); undefined for the other algorithms. */
async function hogwildFor(
  opts: SimOptions, shard: Dataset, compute: TfCompute, i: number, pools: Swarm['pools'], updaterComputes: TfCompute[],
): Promise<HogwildPool | undefined> {
  const { config, peers } = opts
  if (!ALGORITHM_DESCRIPTORS[config.algorithm].hogwild) return undefined
  const initial = await compute.readParams()
  if ((opts.hogwild ?? 'worker') === 'worker') {
    const pool = createNodeHogwildPool({
      model: config.model as ModelName, train: shard, paramCount: compute.paramCount, initial,
      batchSize: config.batchSize, seed: config.seed, updaters: config.updaters,
    })
    pools.push({ pool, running: () => pool.workerCount, dispose: () => pool.dispose() })
    return pool
  }
  // One compute per updater: each has its own minibatch stream (streamSeed), like a worker.
  const own = Array.from({ length: config.updaters }, (_, u) => new TfCompute({
    model: config.model as ModelName, train: shard, batchSize: config.batchSize, seed: config.seed,
    streamSeed: 1000 + peers * u + i,
  }))
  updaterComputes.push(...own)
  const pool = new InProcessHogwildPool(initial, gradientFromComputes(own), { updaters: config.updaters })
  pools.push({ pool, running: () => pool.updaters, dispose: () => {} })
  return pool
}

/** How many of the last peers attack (0 without an attack); throws unless some peer stays honest. */
function attackerCount(opts: SimOptions): number {
  if (!opts.attack) {
    if (opts.attackers) throw new Error('attackers given without an attack')
    return 0
  }
  parseAttack(opts.attack)
  const k = opts.attackers ?? 1
  if (!Number.isInteger(k) || k < 1 || k >= opts.peers) throw new Error(`attackers must be an integer in [1, peers), got ${k}`)
  return k
}

/** Test loss and accuracy of the honest peers' average model, and their consensus distance. */
async function evaluateAverage(swarm: Swarm, testDev: ReturnType<typeof uploadDataset>): Promise<{ loss: number; accuracy: number; consensus: number }> {
  const xs = await Promise.all(swarm.honest.map((i) => swarm.instances[i].evalParams()))
  const avg = new Float32Array(xs[0].length)
  for (const x of xs) for (let i = 0; i < x.length; i++) avg[i] += x[i] / xs.length
  let consensus = 0
  for (const x of xs) for (let i = 0; i < x.length; i++) consensus += (x[i] - avg[i]) ** 2 / xs.length
  if (!avg.every(Number.isFinite)) return { loss: NaN, accuracy: 0, consensus: NaN }
  const r = await swarm.computes[0].evaluate(testDev, avg)
  return { ...r, consensus }
}

/** Each peer's own model's test accuracy (0 for a non-finite model); identical models (ssgd, a PS's workers) are evaluated once. */
async function evaluatePeers(swarm: Swarm, testDev: ReturnType<typeof uploadDataset>): Promise<number[]> {
  const out: number[] = []
  const seen: { x: Float32Array; accuracy: number }[] = []
  const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i])
  for (const p of swarm.instances) {
    const x = await p.evalParams()
    const hit = seen.find((s) => same(s.x, x))
    const accuracy = hit ? hit.accuracy : x.every(Number.isFinite) ? (await swarm.computes[0].evaluate(testDev, x)).accuracy : 0
    if (!hit) seen.push({ x, accuracy })
    out.push(accuracy)
  }
  return out
}

export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const { config, peers } = opts
  if (!Number.isInteger(peers) || peers < 1) throw new Error(`peers must be a positive integer, got ${peers}`)
  await setupNodeBackend('wasm')
  const train = await loadDatasetNode(config.dataset as DatasetName, 'train')
  const fullTest = await loadDatasetNode(config.dataset as DatasetName, 'test')
  const n = Math.min(fullTest.count, opts.evalSamples ?? fullTest.count)
  const f = fullTest.rows * fullTest.cols
  const test = n === fullTest.count ? fullTest : { ...fullTest, count: n, x: fullTest.x.subarray(0, n * f), y: fullTest.y.subarray(0, n) }
  const testDev = uploadDataset(test)
  const stop = new AbortController()
  let swarm: Swarm | null = null
  try {
    const sw = (swarm = await buildSwarm(opts, train, stop.signal))
    const run = await stepSwarm(opts, sw, testDev)
    const perPeerAccuracy = await evaluatePeers(sw, testDev)
    const honestAcc = sw.honest.map((i) => perPeerAccuracy[i])
    const attacked = sw.attackers[0]
    return {
      config: { ...config, peers },
      ...run,
      attack: attacked ? {
        name: attacked.attack.name, param: attacked.attack.param, level: attacked.level,
        attackers: sw.meshes.slice(sw.honest.length).map((m) => m.self),
      } : null,
      perPeerAccuracy,
      honest: {
        peers: sw.honest.map((i) => sw.meshes[i].self),
        meanAccuracy: honestAcc.reduce((a, b) => a + b, 0) / honestAcc.length,
        minAccuracy: Math.min(...honestAcc),
      },
      bytesSentPerPeer: sw.meshes.map((m) => m.stats().bytesSent),
      ...(sw.pools.length ? { hogwild: { kind: opts.hogwild ?? 'worker', updatersPerPeer: sw.pools.map((p) => p.running()) } } : {}),
    }
  } finally {
    stop.abort()
    swarm?.dispose()
    testDev.dispose()
  }
}

/** Steps every peer together until the run ends, diverges or (lap-sgd) spends its update budget. */
async function stepSwarm(
  opts: SimOptions, swarm: Swarm, testDev: ReturnType<typeof uploadDataset>,
): Promise<Pick<SimResult, 'finalTestAccuracy' | 'finalTestLoss' | 'diverged' | 'divergence' | 'syncRounds' | 'curve' | 'stepsPerSec' | 'stepsPerCpuSec'>> {
  const { config } = opts
  const steps = config.totalSteps
  const evalEvery = opts.evalEvery ?? Math.max(1, Math.floor(steps / 10))
  const curve: CurvePoint[] = []
  let syncRounds = 0
  let samples = 0
  let final = { loss: NaN, accuracy: 0 }
  let lossSum = 0
  let lossN = 0
  // The rule every session uses (shared/divergence.ts), on the mean loss over peers per step.
  const detector = new DivergenceDetector()
  let lastYield = performance.now()
  let stepMs = 0
  let stepCpuUs = 0
  let stepsDone = 0
  const honest = new Set(swarm.honest)
  for (let s = 1; s <= steps && !detector.diverged; s++) {
    // The in-memory mesh delivers with microtasks, so a run never returns to the event loop by
    // itself: yield between steps (nothing is in flight then) so timers and I/O of the host
    // process — a test runner's worker RPC, a progress bar — are served during long runs.
    if (performance.now() - lastYield > YIELD_EVERY_MS) {
      await new Promise((r) => setImmediate(r))
      lastYield = performance.now()
    }
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    const reports: StepReport[] = await Promise.all(swarm.instances.map((p) => p.step()))
    stepMs += performance.now() - t0
    const c = process.cpuUsage(c0)
    stepCpuUs += c.user + c.system
    stepsDone++
    if (reports[0].communicated) syncRounds++
    let stepSum = 0
    let stepN = 0
    // Attackers' own losses (label-flip…) say nothing about the swarm: the divergence rule and the curve use the honest peers'.
    for (const r of reports.filter((_, i) => honest.has(i))) {
      samples += r.samples
      if (Number.isFinite(r.loss)) (lossSum += r.loss), lossN++, (stepSum += r.loss), stepN++
      else if (!Number.isNaN(r.loss)) detector.nonFinite(s, `peer loss ${r.loss}`)
    }
    if (stepN > 0) detector.observe(stepSum / stepN, s)
    // LAP-SGD's step is a whole round of H local updates and its global step counts updates:
    // the run ends when the update budget is spent, not after `steps` rounds.
    const budgetSpent = ALGORITHM_DESCRIPTORS[config.algorithm].hogwild && reports.every((r) => r.globalStep >= steps)
    let point: CurvePoint | null = null
    if (s % evalEvery === 0 || s === steps || detector.diverged || budgetSpent) {
      const e = await evaluateAverage(swarm, testDev)
      final = e
      if (!Number.isFinite(e.loss)) detector.nonFinite(s, 'the averaged model is not finite')
      point = { step: s, samples, trainLoss: lossN ? lossSum / lossN : NaN, testAccuracy: e.accuracy, consensusDistance: e.consensus, lr: reports[0].lr, h: reports[0].h ?? null }
      curve.push(point)
      lossSum = 0
      lossN = 0
    }
    opts.onProgress?.(s, steps, point)
    if (budgetSpent) break
  }
  const divergence = detector.diverged
  return {
    finalTestAccuracy: final.accuracy, finalTestLoss: final.loss, diverged: divergence !== null, divergence, syncRounds, curve,
    stepsPerSec: stepMs > 0 ? (stepsDone * 1000) / stepMs : 0,
    stepsPerCpuSec: stepCpuUs > 0 ? (stepsDone * 1e6) / stepCpuUs : 0,
  }
}

/** Builds the room config from CLI flags (the same validation as POST /api/rooms). */
export function parseSimArgs(argv: readonly string[]): {
  config: RoomConfig; peers: number; evalEvery?: number; hogwild: HogwildKind; faults: FaultName; json?: string; attack?: string; attackers?: number
} {
  const program = new Command()
    .exitOverride()
    .requiredOption('--algorithm <name>')
    .option('--peers <n>', 'peers', '4')
    .option('--dataset <name>', DATASETS.join('|'), 'synthetic')
    .option('--model <name>', MODELS.join('|'), 'mlp')
    .option('--steps <n>', 'steps per peer', '200')
    .option('--batch <n>', 'per-peer batch', '32')
    .option('--lr <x>')
    .option('--seed <k>', 'seed', '0')
    .option('--topology <t>')
    .option('--momentum <b>')
    .option('--partition <p>', 'iid | label-skew:C | dirichlet:α', 'iid')
    .option('--schedule <kind>', 'constant|cosine|linear|step')
    .option('--warmup <n>', 'warmup steps (default: the algorithm\'s, scaled to --steps)')
    .option('--h <n>', 'constant H for local-sgd family')
    .option('--h-base <n>')
    .option('--qsr-alpha <a>')
    .option('--local-lr <x>')
    .option('--lr-scaling <s>', 'ssgd: none | linear[:REFERENCE_BATCH] (Goyal et al.; default reference 256)')
    .option('--resync-every <k>', 'ssgd: average x and m every k steps (0: only after a fallback)')
    .option('--updaters <u>', 'lap-sgd: Hogwild updaters per peer')
    .option('--hogwild <kind>', 'lap-sgd updaters: worker (worker_threads) | inprocess', 'worker')
    .option('--faults <name>', `in-memory mesh faults: ${Object.keys(FAULTS).join('|')}`, 'none')
    .option('--attack <name>', `hostile peers (shared/testing/attacks.ts): ${ATTACK_NAMES.join('|')}, or NAME:VALUE to set its parameter`)
    .option('--attackers <k>', 'how many peers run --attack: the last k of the roster (default 1)')
    .option('--link <profile>', 'emulated link conditions on every link: lan|wan|slow|lossy (docs/architecture.md "Link conditions"; default: lan)')
    .option('--robust <mode>', `Byzantine-robust aggregation: ${ROBUST_MODES.join('|')} (default: off)`)
    .option('--eval-every <n>', 'evaluate the averaged model every n steps')
    .option('--json <file>')
    .parse([...argv], { from: 'user' })
  const o = program.opts<Record<string, string | undefined>>()
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v))
  const raw: Record<string, unknown> = {
    algorithm: o.algorithm, dataset: o.dataset, model: o.model, partition: o.partition,
    batchSize: num(o.batch), totalSteps: num(o.steps), seed: num(o.seed),
  }
  if (o.lr) raw.lr = num(o.lr)
  if (o.topology) raw.topology = o.topology
  if (o.robust) raw.robust = o.robust
  if (o.link) raw.link = o.link
  if (o.momentum) raw.momentum = num(o.momentum)
  if (o.localLr) raw.localLr = num(o.localLr)
  if (o.updaters) raw.updaters = num(o.updaters)
  if (o.resyncEvery) raw.resyncEvery = num(o.resyncEvery)
  if (o.lrScaling) {
    const [kind, ref] = o.lrScaling.split(':')
    raw.lrScaling = ref === undefined ? { kind } : { kind, referenceBatch: Number(ref) }
  }
  // Each flag changes only its own field; the rest comes from the algorithm's default schedule.
  if (o.schedule || o.warmup) raw.schedule = { ...(o.schedule ? { kind: o.schedule } : {}), ...(o.warmup ? { warmupSteps: num(o.warmup) } : {}) }
  if (o.hBase || o.qsrAlpha) raw.sync = { kind: 'qsr', hBase: num(o.hBase) ?? 2, alpha: num(o.qsrAlpha) ?? 0.2 }
  else if (o.h) raw.sync = { kind: 'constant', h: num(o.h) }
  const parsed = parseRoomConfig(raw)
  if (!parsed.ok) throw new Error(parsed.error)
  if (o.hogwild !== 'worker' && o.hogwild !== 'inprocess') throw new Error(`--hogwild must be worker or inprocess, got ${o.hogwild}`)
  if (!(o.faults! in FAULTS)) throw new Error(`--faults must be one of ${Object.keys(FAULTS).join(', ')}`)
  const peers = Number(o.peers)
  if (!Number.isInteger(peers) || peers < 1) throw new Error(`--peers must be a positive integer, got ${o.peers}`)
  if (o.attackers && !o.attack) throw new Error('--attackers needs --attack')
  if (o.attack) parseAttack(o.attack)
  const attackers = o.attack ? Number(o.attackers ?? 1) : undefined
  if (attackers !== undefined && (!Number.isInteger(attackers) || attackers < 1 || attackers >= peers))
    throw new Error(`--attackers must be an integer in [1, peers), got ${o.attackers}`)
  return {
    ...(o.attack ? { attack: o.attack, attackers } : {}),
    config: parsed.config, peers, hogwild: o.hogwild, faults: o.faults as FaultName,
    ...(o.evalEvery ? { evalEvery: Number(o.evalEvery) } : {}), ...(o.json ? { json: o.json } : {}),
  }
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseSimArgs>
  try {
    args = parseSimArgs(process.argv.slice(2))
  } catch (e) {
    // Commander already printed --help / usage errors; ours (config validation) are printed here.
    const code = (e as { code?: string }).code
    if (code === 'commander.helpDisplayed' || code === 'commander.version') process.exit(0)
    if (!code?.startsWith('commander.')) console.error(`sim: ${(e as Error).message}`)
    process.exit(2)
  }
  const bar = process.stdout.isTTY ? new cliProgress.SingleBar({ format: 'sim {bar} {value}/{total} steps | loss {loss} | acc {acc}' }, cliProgress.Presets.shades_classic) : null
  bar?.start(args.config.totalSteps, 0, { loss: '-', acc: '-' })
  const result = await runSimulation({
    config: args.config, peers: args.peers, hogwild: args.hogwild, faults: args.faults,
    ...(args.attack ? { attack: args.attack, attackers: args.attackers } : {}),
    ...(args.evalEvery !== undefined ? { evalEvery: args.evalEvery } : {}),
    onProgress: (s, _total, p) => (p ? bar?.update(s, { loss: p.trainLoss.toFixed(4), acc: p.testAccuracy.toFixed(4) }) : bar?.update(s)),
  })
  bar?.stop()
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2))
  const { finalTestAccuracy, finalTestLoss, diverged, divergence, syncRounds, honest, stepsPerSec } = result
  console.log(JSON.stringify({
    algorithm: args.config.algorithm, finalTestAccuracy, finalTestLoss, diverged, syncRounds,
    ...(result.attack ? { attack: result.attack.name, attackers: result.attack.attackers.length, robust: args.config.robust } : {}),
    honestMeanAccuracy: honest.meanAccuracy, honestMinAccuracy: honest.minAccuracy, stepsPerSec: +stepsPerSec.toFixed(2),
  }))
  if (divergence) console.error(`sim: diverged at step ${divergence.step}: ${divergence.reason}`)
  process.exit(0)
}

// Run as a script (`npm run sim`, bench/calibration.ts spawns it), not when imported by tests.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main()
