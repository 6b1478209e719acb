import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { argOf, benchServer, benchWorkerFlags, ensureNetns, load, maybeSampleAllocations, maybeSampleMemory, median, writeResult } from './common'
import { machineShare, procStat, runSwarm, type MachineShare } from './swarm'
import { processCpuMs as cpuMs, splitThreads, threadCpuMs, type ThreadSplit } from './threads'
import { subsetDataset, type Dataset } from '../shared/data/format'
import type { Compute } from '../shared/algorithms/types'

/**
 * Issue 4 swarm overhead: per-peer training steps/s inside a swarm of N headless Node peers
 * (separate processes, real WebRTC, model mlp, synthetic data, tfjs wasm) vs a plain tfjs loop on
 * the same backend and model. The machine has 2 cores, so N peers share them: the baseline runs N
 * plain loops concurrently too (same CPU contention), and overhead = 1 − swarm/plain per peer.
 *   sh tools/netns-run.sh npx tsx bench/overhead.ts [--quick] [--model mlp|deep-mlp|cnn] [--dataset synthetic|mnist]
 *     [--only a,b] [--repeat K] [--peers N] [--compute-thread auto|worker|main|both] [--compression fp32,fp16,int8]
 *     [--peer-gc parallel,single] [--webrtc wrtc,node-datachannel] [--worker-loop] [--no-warmup] [--batch B]
 * --compute-thread: where each peer runs its tfjs model (default auto, as `npm run peer`);
 * `both` measures the two interleaved (rows `x` and `x@main`).
 * Every row also gives CPU time per minibatch update (all threads; swarm vs plain), the same
 * split by thread (main / busiest other = the compute worker / rest, bench/threads.ts), cores
 * kept busy per peer and the VM's steal time around it: wall-clock steps/s on this shared VM
 * moves with other tenants, and these say which part of a row's overhead is ours.
 *
 * Plain loops (this file re-forked with --plain-worker): every worker loads first, then all start
 * together (barrier), and the variants are measured in interleaved blocks (A B C D A B C D …,
 * steps ÷ time summed over the blocks), so neither process start-up of the sibling nor JIT
 * warm-up lands on one variant only. The plain loops run before the first swarm row and again
 * after every row; each row is compared with the mean of the plain runs just before and after it
 * (the machine's speed drifts between minutes). Variants: `local` = TfCompute.localStep (SGD+momentum on the device), `gradient`
 * = gradient() + readParams + host update + writeParams, `localSleep0` = localStep followed by
 * `await sleep(0)` (setTimeout 0, what the session loop yields after every step) and
 * `localImmediate` = localStep followed by a setImmediate yield.
 */
const SCRIPT = fileURLToPath(import.meta.url)
const WORKER = process.argv.includes('--plain-worker')
if (!WORKER) await ensureNetns(SCRIPT)
const quick = process.argv.includes('--quick')

type PlainVariant = 'local' | 'gradient' | 'localSleep0' | 'localImmediate' | 'workerGradient'
// --worker-loop adds `workerGradient` to every plain run: the `gradient` loop with the model on a
// worker_threads WorkerCompute, as every swarm peer runs it. It separates what the worker thread
// itself costs from what the swarm adds on top.
const WORKER_LOOP = process.argv.includes('--worker-loop')
const VARIANTS: PlainVariant[] = ['local', 'gradient', 'localSleep0', 'localImmediate', ...(WORKER_LOOP ? ['workerGradient' as const] : [])]
const BRACKET: PlainVariant[] = ['local', 'gradient', ...(WORKER_LOOP ? ['workerGradient' as const] : [])]
/** cpuMsPerStep: this process's CPU time (all threads) per step of the variant, summed over its blocks. */
/** threadMsPerStep: the same split by thread (main / busiest other / rest, see bench/threads.ts); Linux only. */
type PlainResult = {
  backend: string; paramCount: number; stepsPerSec: Record<PlainVariant, number>; cpuMsPerStep: Record<PlainVariant, number>
  threadMsPerStep?: Record<PlainVariant, ThreadSplit>; blocks: Record<PlainVariant, number[]>
}

/** What the gossip algorithms do per step: gradient, read the parameters back, update on the host, write. */
async function readBackStep(c: Compute): Promise<void> {
  const g = await c.gradient()
  const x = await c.readParams()
  for (let i = 0; i < x.length; i++) x[i] -= 0.01 * g.grad[i]
  await c.writeParams(x)
}

async function plainWorker(model: string, dataset: string, batch: number, blockMs: number, rounds: number, variants: PlainVariant[]): Promise<void> {
  maybeSampleAllocations(`plain-${variants.join('+')}`)
  maybeSampleMemory(`plain-${variants.join('+')}`)
  const { setupNodeBackend } = await import('../client/runtime/node-backend')
  const { loadDatasetNode } = await import('../client/runtime/data-loader-node')
  const { TfCompute } = await import('../client/runtime/tf-compute')
  const backend = await setupNodeBackend('wasm')
  const train = await loadDatasetNode(dataset as 'synthetic', 'train')
  const c = new TfCompute({ model: model as 'mlp', train, batchSize: batch, seed: 0, streamSeed: 0 })
  const w = variants.includes('workerGradient') ? await startWorkerLoop(model, train, batch) : undefined
  const opt = { optimizer: 'sgd' as const, lr: 0.05, momentum: 0.9, weightDecay: 0 }
  const one: Record<PlainVariant, () => Promise<unknown>> = {
    local: () => c.localStep(opt),
    gradient: () => readBackStep(c),
    localSleep0: async () => {
      await c.localStep(opt)
      await new Promise((r) => setTimeout(r, 0))
    },
    localImmediate: async () => {
      await c.localStep(opt)
      await new Promise((r) => setImmediate(r))
    },
    workerGradient: () => readBackStep(w!),
  }
  for (const v of variants) for (let i = 0; i < 10; i++) await one[v]()
  process.send!({ ev: 'ready' })
  await new Promise<void>((r) => process.once('message', () => r()))
  const blocks = Object.fromEntries(variants.map((v) => [v, [] as number[]])) as Record<PlainVariant, number[]>
  const total = Object.fromEntries(variants.map((v) => [v, { steps: 0, ms: 0, cpuMs: 0, main: 0, other: 0, rest: 0 }])) as Record<PlainVariant, { steps: number; ms: number; cpuMs: number; main: number; other: number; rest: number }>
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const t0 = performance.now()
      const c0 = cpuMs()
      const th0 = threadCpuMs(process.pid)
      let n = 0
      while (performance.now() - t0 < blockMs) (await one[v](), n++)
      const ms = performance.now() - t0
      total[v].cpuMs += cpuMs() - c0
      const split = splitThreads(process.pid, th0, threadCpuMs(process.pid))
      if (split) (total[v].main += split.mainMs, total[v].other += split.busiestOtherMs, total[v].rest += split.restMs)
      blocks[v].push(n / (ms / 1000))
      total[v].steps += n
      total[v].ms += ms
    }
  }
  // Steps over time summed across blocks: a block holds only ~7 steps of a cnn, so a per-block
  // median would be quantized to ~15 %.
  const stepsPerSec = Object.fromEntries(variants.map((v) => [v, +(total[v].steps / (total[v].ms / 1000)).toFixed(2)])) as Record<PlainVariant, number>
  const cpuMsPerStep = Object.fromEntries(variants.map((v) => [v, +(total[v].cpuMs / Math.max(1, total[v].steps)).toFixed(2)])) as Record<PlainVariant, number>
  const perStep = (v: PlainVariant, x: number) => +(x / Math.max(1, total[v].steps)).toFixed(2)
  const threadMsPerStep = Object.fromEntries(variants.map((v) => [v, { mainMs: perStep(v, total[v].main), busiestOtherMs: perStep(v, total[v].other), restMs: perStep(v, total[v].rest) }])) as Record<PlainVariant, ThreadSplit>
  process.send!({ ev: 'plain', backend, paramCount: c.paramCount, stepsPerSec, cpuMsPerStep, threadMsPerStep, blocks } satisfies PlainResult & { ev: string })
  c.dispose()
  w?.dispose()
}

/**
 * A comma-separated row dimension (`--compression fp32,fp16`): the values to measure, interleaved,
 * each checked against `allowed`; the first allowed value is the default.
 */
function listArg(flag: string, allowed: readonly string[]): string[] {
  const values = (argOf(flag) ?? allowed[0]).split(',')
  for (const v of values) if (!allowed.includes(v)) throw new Error(`${flag} takes ${allowed.join(', ')}, got ${v}`)
  return values
}

/** The result file's name part for a listArg dimension: empty at its default. */
function listSuffix(flag: string, def: string, prefix = ''): string {
  const v = argOf(flag)
  return v && v !== def ? `-${prefix}${v.replace(/,/g, '-')}` : ''
}

/** The swarm peer's compute path without the swarm: a WorkerCompute on a worker thread. */
async function startWorkerLoop(model: string, train: Dataset, batch: number) {
  const { startNodeWorkerCompute } = await import('../client/runtime/compute-worker/node')
  // A 10k-example prefix: the worker gets its own copy of the data (a swarm peer's shard is a copy
  // too), and batch speed does not depend on how many examples it samples from.
  const part = subsetDataset(train, Array.from({ length: Math.min(10_000, train.count) }, (_, i) => i))
  return startNodeWorkerCompute({ model: model as 'mlp', train: part, test: subsetDataset(train, [0]), batchSize: batch, seed: 0, streamSeed: 0 })
}

/** n plain loops at once (same CPU contention as n swarm peers), started together. */
async function plainLoops(n: number, model: string, dataset: string, batch: number, seconds: number, variants: PlainVariant[] = VARIANTS): Promise<PlainResult[]> {
  const rounds = 4
  const blockMs = Math.max(250, (seconds * 1000) / (rounds * variants.length))
  const kids = Array.from({ length: n }, () => fork(SCRIPT, ['--plain-worker', model, dataset, String(batch), String(blockMs), String(rounds), variants.join(',')], { execArgv: ['--import', 'tsx', ...benchWorkerFlags()], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const ready = kids.map((k) => new Promise<void>((r, j) => {
    k.on('message', (m: { ev: string }) => m.ev === 'ready' && r())
    k.once('exit', (c) => j(new Error(`plain worker exited ${c}`)))
  }))
  const results = kids.map((k) => new Promise<PlainResult>((r) => k.on('message', (m: { ev: string } & PlainResult) => m.ev === 'plain' && r(m))))
  await Promise.all(ready)
  for (const k of kids) k.send({ op: 'go' })
  const out = await Promise.all(results)
  await Promise.all(kids.map((k) => (k.exitCode !== null ? Promise.resolve() : new Promise((r) => k.once('exit', r)))))
  return out
}

/**
 * Percentile-bootstrap 95 % interval of the median (seeded, 2000 resamples): with a handful of
 * rows it is wide, which is the point — it says how much one more run could move the median.
 */
function bootstrapMedianCi(xs: number[]): [number, number] {
  if (xs.length < 2) return [xs[0] ?? NaN, xs[0] ?? NaN]
  let seed = 12345
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const meds = Array.from({ length: 2000 }, () => median(xs.map(() => xs[Math.floor(rand() * xs.length)])))
  meds.sort((a, b) => a - b)
  return [+meds[49].toFixed(1), +meds[1949].toFixed(1)]
}

/**
 * One benchmark run: plain baselines, then every row bracketed by plain runs. Longer than 80
 * lines on purpose: it is a script whose flags each add a variant to the same measurement loop,
 * and the order of measurements (interleaving, brackets) is the point of it, so it reads top to
 * bottom; it is never called from the product.
 */
export async function runOverheadBench(o: { n?: number; seconds?: number; model?: string; dataset?: string } = {}) {
  const n = o.n ?? Number(argOf('--peers') ?? 2)
  // mlp (5.5k params, ~1 ms/step on wasm) makes every fixed per-step cost look large; a bigger
  // model (--model cnn --dataset mnist) shows the overhead at a realistic step time.
  const model = o.model ?? argOf('--model') ?? 'mlp'
  const dataset = o.dataset ?? argOf('--dataset') ?? (model === 'cnn' ? 'mnist' : 'synthetic')
  const seconds = o.seconds ?? (quick ? 12 : 25)
  // --batch B (default 32, the room default): the peers' minibatch. The swarm's cost per update is
  // mostly per parameter sent (the same at any batch), the gradient's is per example, so the
  // overhead's share falls as the batch grows; this shows where it crosses a target on this box.
  const batch = Number(argOf('--batch') ?? 32)
  if (!Number.isInteger(batch) || batch < 1 || batch > 4096) throw new Error(`--batch takes an integer 1…4096, got ${argOf('--batch')}`)
  const repeat = Math.max(1, Number(argOf('--repeat') ?? 1))
  const loadBefore = load()
  // This VM's speed drifts by tens of percent over minutes (other tenants), more than the effect
  // measured. So the plain baseline is measured right before AND right after every swarm row
  // (plain, row 1, plain, row 2, …, plain) and each row is compared with the mean of its two
  // neighbours in time; `driftPct` says how much the machine moved meanwhile.
  type PlainRun = { at: string; perProcess: PlainResult[]; local: number; gradient: number; worker?: number; cpuLocal: number; cpuGradient: number; cpuWorker?: number; machine?: MachineShare }
  const meanSplit = (xs: (ThreadSplit | undefined)[], k = 1): ThreadSplit | undefined => {
    const ok = xs.filter((x): x is ThreadSplit => !!x)
    if (!ok.length) return undefined
    const m = (f: (x: ThreadSplit) => number) => +((ok.reduce((a, x) => a + f(x), 0) / ok.length) * k).toFixed(1)
    return { mainMs: m((x) => x.mainMs), busiestOtherMs: m((x) => x.busiestOtherMs), restMs: m((x) => x.restMs) }
  }
  const fmtSplit = (x?: ThreadSplit) => (x ? `${x.mainMs}/${x.busiestOtherMs}/${x.restMs}` : '?')
  const plainRuns: PlainRun[] = []
  const plainAt = async (at: string, variants: PlainVariant[]) => {
    const s0 = procStat()
    const perProcess = await plainLoops(n, model, dataset, batch, seconds / 2, variants)
    const machine = machineShare(s0, procStat())
    const mean = (v: PlainVariant) => perProcess.reduce((acc, p) => acc + (p.stepsPerSec[v] ?? 0), 0) / n
    const meanCpu = (v: PlainVariant) => perProcess.reduce((acc, p) => acc + (p.cpuMsPerStep[v] ?? 0), 0) / n
    const run: PlainRun = {
      at, perProcess, local: mean('local'), gradient: mean('gradient'), cpuLocal: meanCpu('local'), cpuGradient: meanCpu('gradient'), machine,
      ...(variants.includes('workerGradient') ? { worker: mean('workerGradient'), cpuWorker: meanCpu('workerGradient') } : {}),
    }
    plainRuns.push(run)
    const extra = variants.includes('localSleep0')
      ? `, ${mean('localSleep0').toFixed(2)} on device + sleep(0) per step, ${mean('localImmediate').toFixed(2)} on device + setImmediate per step`
      : ''
    console.log(`  plain tfjs loop ${at} (${n} concurrent, ${perProcess[0].backend}): ${run.local.toFixed(2)} steps/s on device, ${run.gradient.toFixed(2)} with gradient read-back${extra}${run.worker !== undefined ? `, ${run.worker.toFixed(2)} with the model on a worker thread` : ''}; CPU ${run.cpuLocal.toFixed(1)} / ${run.cpuGradient.toFixed(1)}${run.cpuWorker !== undefined ? ` / ${run.cpuWorker.toFixed(1)}` : ''} ms per step, steal ${machine?.stealPct ?? '?'} %`)
    return run
  }
  // The baseline is the faster of the two plain loops (the fairest "plain tfjs" reference).
  const best = (r: { local: number; gradient: number }) => Math.max(r.local, r.gradient)
  // CPU per step of the same (faster) variant: the drift-free side of the comparison.
  const bestVariant = (r: PlainRun): PlainVariant => (r.local >= r.gradient ? 'local' : 'gradient')
  const bestCpu = (r: PlainRun) => (bestVariant(r) === 'local' ? r.cpuLocal : r.cpuGradient)
  const bestSplit = (r: PlainRun) => meanSplit(r.perProcess.map((p) => p.threadMsPerStep?.[bestVariant(r)]))
  const server = await benchServer()
  let before: PlainRun | undefined
  const rows: { algorithm: string; overheadPct: number; [k: string]: unknown }[] = []
  try {
    const base = { model, dataset, batchSize: batch, totalSteps: 100000, partition: 'iid' }
    const table = [
      ['local-sgd', { ...base, algorithm: 'local-sgd', sync: { kind: 'constant', h: 8 }, schedule: { kind: 'constant', warmupSteps: 0 } }],
      // The algorithms that overlap communication with computation (the ≤ 10 % goal is theirs).
      ['dpsgd', { ...base, algorithm: 'dpsgd', topology: 'ring' }],
      ['ad-psgd', { ...base, algorithm: 'ad-psgd', topology: 'ring' }],
      ['od-sgd', { ...base, algorithm: 'od-sgd', topology: 'star' }],
      // One updater per tab, so a step is one minibatch update as in the plain loop.
      ['lap-sgd', { ...base, algorithm: 'lap-sgd', topology: 'clique', updaters: 1, sync: { kind: 'constant', h: 8 } }],
    ] as const
    // --only a,b: measure just these rows (the plain baselines always run).
    const only = argOf('--only')?.split(',')
    // Warm-up: one unmeasured swarm of the first row before the first plain run, so that every
    // bracket's "before" run follows a swarm, as all later ones do. Without it the first plain run
    // was the fastest plain measurement in 4 of 5 runs on this VM (8.4–9.3 steps/s, later ones
    // 6.3–8.6), which inflated the first row's overhead (20–34 % against a median of 11 % for the
    // same algorithm's next row). --no-warmup skips it.
    if (!quick && !process.argv.includes('--no-warmup')) {
      const first = table.find(([x]) => !only || only.includes(x))
      if (!first) throw new Error(`--only ${only?.join(',')} names no row; rows: ${table.map(([x]) => x).join(', ')}`)
      const [name, cfg] = first
      console.log(`  warm-up: ${name} swarm, not measured`)
      await runSwarm(server.url, { n, config: cfg, seconds: 10, label: `warmup-${name}`, warmSteps: 5 })
    }
    before = await plainAt('first', VARIANTS)
    // --repeat K: K passes over the rows (interleaved, so the machine's drift spreads over all of
    // them); the summary gives each algorithm's median and range. One row's overhead moved from
    // −1 % to 37 % between runs of the same code on this VM.
    // --compute-thread auto|worker|main|both: where each Node peer runs its tfjs model (default
    // auto, as `npm run peer`: the cnn at batch 32 on a worker, the mlp on the main thread);
    // `both` measures worker and main interleaved, rows `x` and `x@main`.
    const threads = (argOf('--compute-thread') ?? 'auto') === 'both' ? ['worker', 'main'] : [argOf('--compute-thread') ?? 'auto']
    for (const t of threads) if (t !== 'auto' && t !== 'worker' && t !== 'main') throw new Error(`--compute-thread must be auto, worker, main or both, got ${t}`)
    // --compression fp32,fp16,int8 (default fp32): the room's wire compression; several are
    // measured interleaved, rows `x` (fp32) and `x+fp16`. A smaller payload is less work for the
    // WebRTC stack's threads, which on a machine with no spare core comes out of the gradients.
    const compressions = listArg('--compression', ['fp32', 'fp16', 'int8'])
    // --peer-gc parallel,single (default parallel): `single` starts the swarm peers (not the plain
    // loops, which stand for what a user runs) with --single-threaded-gc, rows `x+1gc`. With as
    // many busy processes as cores, V8's parallel GC helper threads have no idle core to run on.
    const gcModes = listArg('--peer-gc', ['parallel', 'single'])
    // --webrtc wrtc,node-datachannel (default wrtc): the swarm peers' Node WebRTC stack, rows
    // `x+ndc` for node-datachannel (libdatachannel: no media engine, no audio device ticker).
    const stacks = listArg('--webrtc', ['wrtc', 'node-datachannel'])
    for (let rep = 0; rep < repeat; rep++) for (const [name, cfg] of table) for (const thread of threads) for (const compression of compressions) for (const gcMode of gcModes) for (const stack of stacks) {
      if (only && !only.includes(name)) continue
      const config = { ...cfg, compression }
      const label = (threads.length > 1 && thread === 'main' ? `${name}@main` : name) + (compression === 'fp32' ? '' : `+${compression}`) + (gcMode === 'single' ? '+1gc' : '') +
        (stack === 'wrtc' ? '' : '+ndc')
      const r = await runSwarm(server.url, {
        n, config, seconds, label: (repeat > 1 ? `${label}-r${rep}` : label).replace(/[@+]/g, '-'), warmSteps: 5, env: { TABSWARM_COMPUTE_THREAD: thread, BENCH_WEBRTC: stack },
        nodeFlags: gcMode === 'single' ? ['--single-threaded-gc'] : [],
      })
      const after = await plainAt(`after ${label}`, BRACKET)
      const baseline = (best(before) + best(after)) / 2
      const plainLocal = (before.local + after.local) / 2
      const plainGrad = (before.gradient + after.gradient) / 2
      // Minibatch updates per second (samples ÷ batch): a lap-sgd step() is a whole round of H
      // updates, every other algorithm's step() is one update.
      const per = r.peers.reduce((a, p) => a + p.samplesPerSec / batch, 0) / n
      // CPU-time view, immune to the VM's drift (another tenant's time is not this process's CPU
      // time): what one minibatch update costs a swarm peer, all its threads counted, against the
      // plain loop; and how much of a core each peer kept busy (below the plain loop's = waiting).
      const swarmCpu = r.peers.reduce((a, p) => a + p.cpuMsPerSample * batch, 0) / n
      const plainCpu = (bestCpu(before) + bestCpu(after)) / 2
      const swarmCores = r.peers.reduce((a, p) => a + p.cpuCores, 0) / n
      // Test-accuracy passes inside the window (the session spends ≤ EVAL_TIME_BUDGET of its time
      // on them, and the plain loop never evaluates): reported apart, and the overhead without them.
      const evalShare = r.peers.reduce((a, p) => a + p.evalShare, 0) / n
      const perTraining = r.peers.reduce((a, p) => a + p.samplesPerSec / batch / Math.max(0.5, 1 - p.evalShare), 0) / n
      // Where the CPU per update went, by thread (main / busiest other / rest): in a swarm peer
      // the busiest other thread is the compute worker; in the plain loop the model runs on main.
      const swarmThreads = meanSplit(r.peers.map((p) => p.threadMsPerSample), batch)
      const plainThreads = meanSplit([bestSplit(before), bestSplit(after)])
      // --worker-loop: what moving the model to a worker thread costs by itself, and what the swarm adds on top.
      const wl = before.worker !== undefined && after.worker !== undefined ? (before.worker + after.worker) / 2 : undefined
      const workerLoop = wl === undefined ? {} : {
        plainWorkerLoopStepsPerSec: +wl.toFixed(2), plainWorkerLoopCpuMsPerUpdate: +(((before.cpuWorker ?? 0) + (after.cpuWorker ?? 0)) / 2).toFixed(1),
        workerLoopCostPct: +((1 - wl / baseline) * 100).toFixed(1), overheadVsWorkerLoopPct: +((1 - per / wl) * 100).toFixed(1),
        plainWorkerLoopThreadMsPerUpdate: meanSplit([before, after].flatMap((r) => r.perProcess.map((p) => p.threadMsPerStep?.workerGradient))),
      }
      const row = {
        algorithm: label, computeThread: thread, compression, peerGc: gcMode, webrtc: stack, rep, peers: n, swarmStepsPerSec: +per.toFixed(2), plainStepsPerSec: +baseline.toFixed(2),
        overheadPct: +((1 - per / baseline) * 100).toFixed(1),
        overheadVsLocalStepLoopPct: +((1 - per / plainLocal) * 100).toFixed(1),
        overheadVsGradientLoopPct: +((1 - per / plainGrad) * 100).toFixed(1),
        evalPct: +(evalShare * 100).toFixed(1), overheadExclEvalPct: +((1 - perTraining / baseline) * 100).toFixed(1),
        ...workerLoop,
        plainBeforeStepsPerSec: +best(before).toFixed(2), plainAfterStepsPerSec: +best(after).toFixed(2),
        driftPct: +((best(after) / best(before) - 1) * 100).toFixed(1),
        swarmCpuMsPerUpdate: +swarmCpu.toFixed(1), plainCpuMsPerUpdate: +plainCpu.toFixed(1),
        // 1 − plain/swarm CPU per update: the share of a swarm peer's CPU that the plain loop does
        // not spend. Equals the steps/s overhead when both keep their cores equally busy.
        cpuOverheadPct: +((1 - plainCpu / swarmCpu) * 100).toFixed(1),
        swarmCoresPerPeer: +swarmCores.toFixed(2),
        swarmThreadMsPerUpdate: swarmThreads, plainThreadMsPerUpdate: plainThreads,
        stealPct: { plainBefore: before.machine?.stealPct, swarm: r.machine?.stealPct, plainAfter: after.machine?.stealPct },
        startupS: r.startupS, windowS: r.windowS, perPeer: r.peers,
      }
      console.log(`  ${label} x${n}: ${per.toFixed(2)} steps/s per peer vs plain ${baseline.toFixed(2)} (before ${best(before).toFixed(2)}, after ${best(after).toFixed(2)}) → overhead ${row.overheadPct} % (${row.evalPct} % of the time evaluating; ${row.overheadExclEvalPct} % without it; vs on-device loop ${row.overheadVsLocalStepLoopPct} %, vs read-back loop ${row.overheadVsGradientLoopPct} %); CPU ${swarmCpu.toFixed(1)} vs ${plainCpu.toFixed(1)} ms per update → ${row.cpuOverheadPct} %, ${swarmCores.toFixed(2)} cores per peer, steal ${r.machine?.stealPct ?? '?'} %; ms per update by thread main/other/rest: swarm ${fmtSplit(swarmThreads)}, plain ${fmtSplit(plainThreads)}` +
        ('overheadVsWorkerLoopPct' in row ? `; plain loop with the model on a worker thread ${row.plainWorkerLoopStepsPerSec} steps/s (${row.workerLoopCostPct} % below the plain loop, ${row.plainWorkerLoopCpuMsPerUpdate} ms CPU, threads ${fmtSplit(row.plainWorkerLoopThreadMsPerUpdate)}) → swarm overhead over it ${row.overheadVsWorkerLoopPct} %` : ''))
      rows.push(row)
      before = after
    }
  } finally {
    await server.close()
  }
  const summary = [...new Set(rows.map((r) => r.algorithm))].map((algorithm) => {
    const mine = rows.filter((r) => r.algorithm === algorithm)
    const o = mine.map((r) => r.overheadPct)
    const c = mine.map((r) => r.cpuOverheadPct as number)
    const ci = bootstrapMedianCi(o)
    return {
      algorithm, runs: o.length, medianOverheadPct: +median(o).toFixed(1), minOverheadPct: Math.min(...o), maxOverheadPct: Math.max(...o),
      medianCi95Pct: ci, medianEvalPct: +median(mine.map((r) => r.evalPct as number)).toFixed(1),
      medianOverheadExclEvalPct: +median(mine.map((r) => r.overheadExclEvalPct as number)).toFixed(1), medianCpuOverheadPct: +median(c).toFixed(1), minCpuOverheadPct: Math.min(...c), maxCpuOverheadPct: Math.max(...c),
      ...(mine.every((r) => typeof r.overheadVsWorkerLoopPct === 'number') ? {
        medianWorkerLoopCostPct: +median(mine.map((r) => r.workerLoopCostPct as number)).toFixed(1),
        medianOverheadVsWorkerLoopPct: +median(mine.map((r) => r.overheadVsWorkerLoopPct as number)).toFixed(1),
      } : {}),
    }
  })
  if (repeat > 1) for (const x of summary) console.log(`  ${x.algorithm}: median overhead ${x.medianOverheadPct} % over ${x.runs} runs (${x.minOverheadPct} … ${x.maxOverheadPct} %, bootstrap 95 % CI of the median ${x.medianCi95Pct.join(' … ')} %; ${x.medianEvalPct} % evaluating, ${x.medianOverheadExclEvalPct} % without it); CPU per update: median ${x.medianCpuOverheadPct} % (${x.minCpuOverheadPct} … ${x.maxCpuOverheadPct} %)` +
    ('medianOverheadVsWorkerLoopPct' in x ? `; the worker-thread loop alone costs ${x.medianWorkerLoopCostPct} %, the swarm over it ${x.medianOverheadVsWorkerLoopPct} % (medians)` : ''))
  const first = plainRuns[0]
  const mean0 = (v: PlainVariant) => first.perProcess.reduce((acc, p) => acc + (p.stepsPerSec[v] ?? 0), 0) / n
  return {
    model, dataset, batch,
    plain: {
      runs: plainRuns.map((p) => ({ at: p.at, localStepsPerSec: +p.local.toFixed(2), gradientStepsPerSec: +p.gradient.toFixed(2), perProcess: p.perProcess })),
      localSleep0StepsPerSec: +mean0('localSleep0').toFixed(2), localImmediateStepsPerSec: +mean0('localImmediate').toFixed(2),
    },
    repeat, computeThread: argOf('--compute-thread') ?? 'auto', rows, summary, gc: process.env.TABSWARM_NODE_GC === 'default' ? 'v8 default' : 'heap-growing-percent=100', nodeFlags: benchWorkerFlags(),
    load: { before: loadBefore, after: load() },
  }
}

if (WORKER) {
  const [model, dataset, batch, blockMs, rounds, variants] = process.argv.slice(process.argv.indexOf('--plain-worker') + 1)
  await plainWorker(model, dataset, Number(batch), Number(blockMs), Number(rounds), variants.split(',') as PlainVariant[])
  process.exit(0)
} else if (process.argv[1] === SCRIPT) {
  console.log('overhead: swarm vs plain tfjs loop')
  const r = await runOverheadBench()
  const flagTag = benchWorkerFlags().filter((f) => !f.startsWith('--cpu-prof')).join(' ').replace(/[^a-z0-9]+/gi, '-').replace(/^-+|-+$/g, '')
  // The dataset is named when it is not the model's default (the mlp on MNIST, not synthetic).
  const suffix = (r.model === 'mlp' ? '' : `-${r.model}`) + (r.dataset === (r.model === 'cnn' ? 'mnist' : 'synthetic') ? '' : `-${r.dataset}`) + (r.repeat > 1 ? `-x${r.repeat}` : '') + (argOf('--peers') === '1' ? '-1peer' : '') + (r.batch !== 32 ? `-b${r.batch}` : '') +
    (argOf('--compute-thread') && argOf('--compute-thread') !== 'auto' ? `-${argOf('--compute-thread')}` : '') +
    listSuffix('--compression', 'fp32') + listSuffix('--peer-gc', 'parallel', 'gc-') +
    listSuffix('--webrtc', 'wrtc').replace('node-datachannel', 'ndc') + (WORKER_LOOP ? '-wl' : '') +
    // BENCH_NODE_FLAGS (applied to swarm peers and plain loops alike) names its own result file.
    (flagTag ? `-${flagTag}` : '')
  console.log('wrote', writeResult(`${quick ? 'overhead-quick' : 'overhead'}${suffix}`, r))
  process.exit(0)
}
