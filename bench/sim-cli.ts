import { writeFileSync } from 'node:fs'
import { Command } from 'commander'
import cliProgress from 'cli-progress'
import { ALGORITHM_FACTORIES } from '../shared/algorithms/index'
import type { AlgorithmInstance, StepReport } from '../shared/algorithms/types'
import { DATASETS, MODELS, parsePartition, parseRoomConfig, type DatasetName, type ModelName } from '../shared/config'
import { MemoryNetwork } from '../shared/testing/memory-mesh'
import { loadDatasetNode } from '../client/runtime/data-loader-node'
import { shardDataset } from '../client/runtime/data-loader'
import { setupNodeBackend } from '../client/runtime/node-backend'
import { TfCompute, uploadDataset } from '../client/runtime/tf-compute'

/** N peers in one process over the in-memory mesh, real algorithm code, tfjs on wasm. */
const program = new Command()
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
  .option('--warmup <n>')
  .option('--h <n>', 'constant H for local-sgd family')
  .option('--h-base <n>')
  .option('--qsr-alpha <a>')
  .option('--local-lr <x>')
  .option('--updaters <u>')
  .option('--eval-every <n>', 'evaluate the averaged model every n steps')
  .option('--json <file>')
  .parse()
const o = program.opts<Record<string, string | undefined>>()
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v))

const raw: Record<string, unknown> = {
  algorithm: o.algorithm, dataset: o.dataset, model: o.model, partition: o.partition,
  batchSize: num(o.batch), totalSteps: num(o.steps), seed: num(o.seed),
}
if (o.lr) raw.lr = num(o.lr)
if (o.topology) raw.topology = o.topology
if (o.momentum) raw.momentum = num(o.momentum)
if (o.localLr) raw.localLr = num(o.localLr)
if (o.updaters) raw.updaters = num(o.updaters)
if (o.schedule || o.warmup) raw.schedule = { kind: o.schedule ?? 'constant', warmupSteps: num(o.warmup) ?? 0 }
if (o.hBase || o.qsrAlpha) raw.sync = { kind: 'qsr', hBase: num(o.hBase) ?? 2, alpha: num(o.qsrAlpha) ?? 0.2 }
else if (o.h) raw.sync = { kind: 'constant', h: num(o.h) }
const parsed = parseRoomConfig(raw)
if (!parsed.ok) {
  console.error(`sim: ${parsed.error}`)
  process.exit(2)
}
const config = parsed.config
const peers = Number(o.peers)
const steps = config.totalSteps
const evalEvery = num(o.evalEvery) ?? Math.max(1, Math.floor(steps / 10))

await setupNodeBackend('wasm')
const train = await loadDatasetNode(config.dataset as DatasetName, 'train')
const test = await loadDatasetNode(config.dataset as DatasetName, 'test')
const testDev = uploadDataset(test)
const net = new MemoryNetwork({ seed: config.seed })
const meshes = Array.from({ length: peers }, (_, i) => net.join(`p${i}`))
const partition = parsePartition(config.partition)
const computes = meshes.map((_, i) => new TfCompute({
  model: config.model as ModelName, train: shardDataset(train, partition, i, peers, config.seed),
  batchSize: config.batchSize, seed: config.seed, streamSeed: i,
}))
const stop = new AbortController()
const instances: AlgorithmInstance[] = await Promise.all(meshes.map((mesh, i) => ALGORITHM_FACTORIES[config.algorithm]({
  mesh, compute: computes[i], config, signal: stop.signal, log: () => {}, now: () => performance.now(),
})))

interface CurvePoint { step: number; samples: number; trainLoss: number; testAccuracy: number; consensusDistance: number; lr: number; h: number | null }
const curve: CurvePoint[] = []
let syncRounds = 0
let samples = 0
let diverged = false
let final = { loss: NaN, accuracy: 0 }
const bar = process.stdout.isTTY ? new cliProgress.SingleBar({ format: 'sim {bar} {value}/{total} steps | loss {loss} | acc {acc}' }, cliProgress.Presets.shades_classic) : null
bar?.start(steps, 0, { loss: '-', acc: '-' })

async function evaluateAverage(): Promise<{ loss: number; accuracy: number; consensus: number }> {
  const xs = await Promise.all(instances.map((p) => p.evalParams()))
  const avg = new Float32Array(xs[0].length)
  for (const x of xs) for (let i = 0; i < x.length; i++) avg[i] += x[i] / xs.length
  let consensus = 0
  for (const x of xs) for (let i = 0; i < x.length; i++) consensus += (x[i] - avg[i]) ** 2 / xs.length
  if (!avg.every(Number.isFinite)) return { loss: NaN, accuracy: 0, consensus: NaN }
  const r = await computes[0].evaluate(testDev, avg)
  return { ...r, consensus }
}

let lossSum = 0
let lossN = 0
for (let s = 1; s <= steps && !diverged; s++) {
  const reports: StepReport[] = await Promise.all(instances.map((p) => p.step()))
  if (reports[0].communicated) syncRounds++
  for (const r of reports) {
    samples += r.samples
    if (Number.isFinite(r.loss)) (lossSum += r.loss), lossN++
    else if (!Number.isNaN(r.loss)) diverged = true
  }
  if (s % evalEvery === 0 || s === steps || diverged) {
    const e = await evaluateAverage()
    final = e
    if (!Number.isFinite(e.loss)) diverged = true
    curve.push({ step: s, samples, trainLoss: lossN ? lossSum / lossN : NaN, testAccuracy: e.accuracy, consensusDistance: e.consensus, lr: reports[0].lr, h: reports[0].h ?? null })
    lossSum = 0
    lossN = 0
    bar?.update(s, { loss: curve.at(-1)!.trainLoss.toFixed(4), acc: e.accuracy.toFixed(4) })
  } else bar?.update(s)
}
bar?.stop()
stop.abort()
for (const p of instances) p.dispose()
const result = {
  config: { ...config, peers },
  finalTestAccuracy: final.accuracy,
  finalTestLoss: final.loss,
  diverged,
  syncRounds,
  bytesSentPerPeer: meshes.map((m) => m.stats().bytesSent),
  curve,
}
if (o.json) writeFileSync(o.json, JSON.stringify(result, null, 2))
console.log(JSON.stringify({ algorithm: config.algorithm, finalTestAccuracy: final.accuracy, finalTestLoss: final.loss, diverged, syncRounds }))
for (const c of computes) c.dispose()
testDev.dispose()
process.exit(0)
