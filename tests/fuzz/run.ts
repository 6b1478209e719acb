import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fuzzSeed, type FuzzOptions, type TargetResult } from './common'
import { fuzzConfig } from './config-target'
import { fuzzHttp } from './http-target'
import { fuzzSockets } from './socket-target'

/**
 * `npm run fuzz`: every target with FUZZ_RUNS cases (default 100,000), seeded (FUZZ_SEED, else
 * the fixed default). Prints per target the cases, seconds, cases/s and the result, writes
 * bench/results/fuzz.json, and exits non-zero if any target failed.
 *
 *   FUZZ_RUNS=5000 npm run fuzz                       a quick pass
 *   FUZZ_TARGETS=config,http npm run fuzz             some targets only (config, sockets, http)
 *   FUZZ_TARGETS=http FUZZ_SEED=… FUZZ_PATH=… npm run fuzz   replay one failure (the server
 *                                                     targets replay the same inputs against a fresh server)
 */

const TARGETS: Record<string, (o: FuzzOptions) => Promise<TargetResult>> = {
  config: fuzzConfig,
  sockets: fuzzSockets,
  http: fuzzHttp,
}

function runsFromEnv(): number {
  const raw = process.env.FUZZ_RUNS ?? '100000'
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_RUNS: must be a positive integer, got '${raw}'`)
  return n
}

async function main(): Promise<number> {
  const numRuns = runsFromEnv()
  const seed = fuzzSeed()
  const path = process.env.FUZZ_PATH || undefined
  const names = (process.env.FUZZ_TARGETS ?? Object.keys(TARGETS).join(',')).split(',').map((s) => s.trim()).filter(Boolean)
  const unknown = names.filter((n) => !TARGETS[n])
  if (unknown.length) throw new Error(`FUZZ_TARGETS: unknown ${unknown.join(', ')} (known: ${Object.keys(TARGETS).join(', ')})`)

  console.log(`fuzz: ${numRuns} cases per target, seed ${seed}${path ? `, path ${path}` : ''}`)
  const results: TargetResult[] = []
  for (const name of names) {
    process.stdout.write(`  ${name}: running… `)
    let r: TargetResult
    try {
      r = await TARGETS[name]({ numRuns, seed, path })
    } catch (err) {
      // The harness itself broke (the server did not start, …): a failure of the target all the same.
      r = {
        target: name, cases: 0, seconds: 0, casesPerSec: 0, passed: false, seed, path: null,
        failure: `the target could not run: ${err instanceof Error ? err.stack : String(err)}`, outcomes: {},
      }
    }
    results.push(r)
    console.log(`${r.cases} cases in ${r.seconds.toFixed(1)} s, ${r.casesPerSec} cases/s: ${r.passed ? 'passed' : 'FAILED'}`)
    if (!r.passed) console.log(`    seed ${r.seed}${r.path ? `, path ${r.path}` : ''}\n    ${(r.failure ?? '').split('\n').join('\n    ')}`)
  }

  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
  const out = join(root, 'bench', 'results', 'fuzz.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify({
    date: new Date().toISOString(), node: process.version, seed, runsPerTarget: numRuns, passed: results.every((r) => r.passed), targets: results,
  }, null, 2)}\n`)
  console.log(`fuzz: ${results.filter((r) => r.passed).length}/${results.length} targets passed; wrote ${out}`)
  return results.every((r) => r.passed) ? 0 : 1
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err)
  process.exit(2)
})
