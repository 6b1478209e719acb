import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { argOf, benchServer, ensureNetns, machine, RESULTS_DIR } from './common'
import { BARRIER, markdownTable, runRace, summarizeRuns, type RaceAlgorithm, type RaceCase } from './race-lib'
import { ALGORITHMS } from '../shared/algorithms/descriptors'
import { LINK_PROFILES, type LinkProfileName } from '../shared/link-conditions'

/**
 * `npm run bench -- race` (issue 26, docs/reproductions.md): time, bytes per peer and sync rounds
 * to target test accuracies for each algorithm with its documented defaults, over real WebRTC
 * between separate Node volunteer processes, under the emulated link profiles
 * (shared/link-conditions.ts), plus the barrier baseline (bench/race-lib.ts raceConfig) and rows
 * with one volunteer slowed ×4. Every run is appended to bench/results/race-NAME.json as it
 * finishes, so a long matrix stopped half-way keeps what it measured.
 *   npm run bench -- race [--quick] [--algorithms a,b|all] [--links lan,wan] [--datasets mnist,fashion-mnist]
 *     [--partitions iid,label-skew:2] [--slow dpsgd,ad-psgd|none] [--slow-factor 4] [--targets 0.9,0.95,0.97]
 *     [--fashion-targets 0.8,0.85,0.88] [--at 30,60,120] [--repeat 3] [--time-limit 300] [--peers 4]
 *     [--total-steps N] [--compression fp16|int8] [--first-seed K] [--name NAME]
 * --quick: mnist iid on lan, dpsgd, local-sgd and the barrier, target 90 %, 120 s, one repeat.
 * The full matrix (every algorithm × every profile × 2 datasets × 2 partitions × 3 repeats) takes
 * many hours on a 2-core machine: run slices of it with the flags.
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)
const quick = process.argv.includes('--quick')
const list = (name: string, def: string) => (argOf(name) ?? def).split(',').map((s) => s.trim()).filter(Boolean)
const num = (name: string, def: number) => (argOf(name) === undefined ? def : Number(argOf(name)))

const ALL: RaceAlgorithm[] = [...ALGORITHMS, BARRIER]
const algArg = list('--algorithms', quick ? 'dpsgd,local-sgd,barrier' : 'all')
const algorithms = (algArg.includes('all') ? ALL : algArg.includes('none') ? [] : algArg) as RaceAlgorithm[]
const links = list('--links', quick ? 'lan' : LINK_PROFILES.join(',')) as LinkProfileName[]
const datasets = list('--datasets', quick ? 'mnist' : 'mnist,fashion-mnist') as ('mnist' | 'fashion-mnist')[]
const partitions = list('--partitions', quick ? 'iid' : 'iid,label-skew:2')
const slowArg = list('--slow', quick ? 'none' : 'dpsgd,ad-psgd')
const slow = (slowArg.includes('none') ? [] : slowArg) as RaceAlgorithm[]
const slowFactor = num('--slow-factor', 4)
// Fashion-MNIST's mlp tops out near 88–89 %: its targets sit below that.
const targetsFor = (d: string) => (d === 'mnist' ? list('--targets', quick ? '0.9' : '0.9,0.95,0.97') : list('--fashion-targets', '0.8,0.85,0.88')).map(Number)
const accuracyAtS = list('--at', quick ? '30,60' : '30,60,120').map(Number)
const repeat = num('--repeat', quick ? 1 : 3)
const timeLimitS = num('--time-limit', quick ? 120 : 300)
const peers = num('--peers', 4)
const totalSteps = argOf('--total-steps') === undefined ? undefined : Number(argOf('--total-steps'))
// --compression C: every row but the barrier (always fp32) sends with codec C (row name ALG@C).
const compression = argOf('--compression')
const overrides = compression ? { compression } : undefined
// --first-seed K: repeats use seeds K, K+1, … (a later session adds repeats without redoing seed 0).
const firstSeed = num('--first-seed', 0)
const name = argOf('--name') ?? (quick ? 'quick' : 'full')

for (const a of [...algorithms, ...slow]) if (!ALL.includes(a)) (console.error(`unknown algorithm ${a}: one of ${ALL.join(', ')}`), process.exit(2))
for (const l of links) if (!LINK_PROFILES.includes(l)) (console.error(`unknown link ${l}: one of ${LINK_PROFILES.join(', ')}`), process.exit(2))

const cases: RaceCase[] = []
for (let rep = 0; rep < repeat; rep++)
  for (const dataset of datasets)
    for (const partition of partitions)
      for (const link of links) {
        // Repeats differ in seed (weights and shards), as a rerun by someone else would.
        const base = { link, dataset, partition, seed: firstSeed + rep, totalSteps }
        const withCodec = (algorithm: RaceAlgorithm) => ({ ...base, algorithm, ...(overrides && algorithm !== BARRIER ? { overrides } : {}) })
        for (const algorithm of algorithms) cases.push(withCodec(algorithm))
        for (const algorithm of slow) cases.push({ ...withCodec(algorithm), slowFactor })
      }

const meta = {
  command: `npm run bench -- race ${process.argv.slice(2).join(' ')}`.trim(),
  peers, timeLimitS, repeat, firstSeed, algorithms, compression: compression ?? 'default', links, datasets, partitions, slow, slowFactor, totalSteps: totalSteps ?? 'default',
  targets: Object.fromEntries(datasets.map((d) => [d, targetsFor(d)])), accuracyAtS, machine: machine(),
  note: `${peers} volunteer processes share this machine's ${machine().cpus} cores (and the cores' other tenants): times are of this machine, read them against each other`,
}
const outFile = join(RESULTS_DIR, `race-${name}.json`)
console.log(`race: ${cases.length} runs (${peers} volunteers each, ≤ ${timeLimitS} s racing); writing ${outFile}`)
const server = await benchServer()
let result: Awaited<ReturnType<typeof runRace>>
try {
  result = await runRace({
    serverUrl: server.url, cases, outFile, name: `race-${name}`, meta, log: console.log,
    options: (c) => ({ peers, timeLimitS, targets: targetsFor(c.dataset), accuracyAtS }),
  })
} finally {
  await server.close()
}
console.log(`\n${markdownTable(summarizeRuns(result.runs))}\n`)
console.log('wrote', outFile)
process.exit(result.failures.length && !result.runs.length ? 1 : 0)
