import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseRoomConfig, type AlgorithmName, type RobustMode } from '../shared/config'
import { ATTACK_NAMES, type AttackName } from '../shared/testing/attacks'
import { runSimulation, type SimResult } from './sim-cli'
import { argOf, load, machine, median, writeResult } from './common'

/**
 * `npm run bench -- attacks` (docs/security.md "Attacks on training"): the attack catalogue (shared/testing/attacks.ts)
 * against one algorithm per family in the simulator (8 peers, the last 1 or 2 hostile), with
 * robust aggregation off and on. Reports the honest peers' final test accuracy (mean over the
 * honest peers' own models) against the clean run of the same algorithm, partition and robust
 * setting, and the price of `robust: 'on'` in clean runs (accuracy and simulated steps/s).
 *   npx tsx bench/attacks.ts [--quick] [--full] [--steps N] [--only dpsgd,asgd] [--attacks a,b]
 *     [--partitions iid,label-skew:4] [--attackers 1,2] [--robust off,on] [--seed K] [--eval-samples N] [--clean-reps R]
 * Writes bench/results/attacks.json (attacks-quick.json with --quick; --out NAME for another
 * name), a markdown table on stdout (and in the JSON) and docs/attacks/NAME.svg.
 *
 * Scope (2 cores; a run is one 8-peer simulation in this process, single-threaded, ~4–5 CPU s at
 * 80 steps, ~2 s at 30): the default is Fashion-MNIST, mlp, b=32, 80 steps, iid and
 * label-skew:4 (each peer holds 4 of the 10 classes), 4 algorithms × 9 attacks with 1 attacker
 * (robust off and on) and 2 attackers (robust on; --full adds off), plus 3 clean runs per
 * algorithm, partition and robust mode: 264 runs, ~20 min on an idle machine. --quick:
 * label-skew:4, 1 attacker, 30 steps, 2 clean runs each, accuracy on 1000 test examples: 88
 * runs, ~3 min. Accuracy is measured on the first --eval-samples (2000) test examples, the same
 * for every run, so comparisons are paired. A run's accuracy also moves by run-to-run noise (an
 * attacker changes the trajectory): read differences under ~1–2 points as noise.
 */

const FAMILY_ALGORITHMS: readonly AlgorithmName[] = ['dpsgd', 'ad-psgd', 'asgd', 'ssgd']
const FAMILY_OF: Record<string, string> = { dpsgd: 'gossip', 'ad-psgd': 'pairwise-gossip', asgd: 'parameter-server', ssgd: 'all-reduce' }
const PEERS = 8

const quick = process.argv.includes('--quick')
const list = (name: string, dflt: readonly string[]) => argOf(name)?.split(',').filter(Boolean) ?? [...dflt]
const scope = {
  peers: PEERS,
  dataset: 'fashion-mnist',
  model: 'mlp',
  batchSize: 32,
  steps: Number(argOf('--steps') ?? (quick ? 30 : 80)),
  evalSamples: Number(argOf('--eval-samples') ?? (quick ? 1000 : 2000)),
  seed: Number(argOf('--seed') ?? 0),
  algorithms: list('--only', FAMILY_ALGORITHMS) as AlgorithmName[],
  attacks: list('--attacks', ATTACK_NAMES) as AttackName[],
  partitions: list('--partitions', quick ? ['label-skew:4'] : ['iid', 'label-skew:4']),
  attackers: list('--attackers', quick ? ['1'] : ['1', '2']).map(Number),
  robust: list('--robust', ['off', 'on']) as RobustMode[],
  /** Clean runs per algorithm × partition × robust mode, interleaved off/on: the price of robust is their median speed. */
  cleanReps: Number(argOf('--clean-reps') ?? (quick ? 2 : 3)),
  /** Without --robust or --full, 2+ attackers run with robust 'on' only (1 attacker already shows what breaks without it). */
  offOnlyForOneAttacker: argOf('--robust') === undefined && !process.argv.includes('--full'),
}
const outName = argOf('--out') ?? (quick ? 'attacks-quick' : 'attacks')

interface Cell {
  algorithm: AlgorithmName
  family: string
  partition: string
  robust: RobustMode
  attack: AttackName | null
  attackers: number
  /** Repetition of a clean run (0 for attacked runs). */
  rep: number
}

interface CellResult extends Cell {
  /** Mean / min of the honest peers' own models' final test accuracy (%), and the honest peers' average model's. */
  honestMean: number
  honestMin: number
  averagedModel: number
  perPeer: number[]
  diverged: boolean
  stepsPerSec: number
  /** Steps per CPU-second of the simulator during the steps (SimResult.stepsPerCpuSec). */
  stepsPerCpuSec: number
  wallS: number
  /** CPU seconds of this process for the run: the cost of a cell on a machine others share. */
  cpuS: number
  error?: string
}

function cells(): Cell[] {
  const out: Cell[] = []
  for (const partition of scope.partitions)
    for (const algorithm of scope.algorithms) {
      const family = FAMILY_OF[algorithm] ?? algorithm
      for (let rep = 0; rep < Math.max(1, scope.cleanReps); rep++)
        for (const robust of scope.robust) out.push({ algorithm, family, partition, robust, attack: null, attackers: 0, rep })
      for (const robust of scope.robust) {
        for (const attackers of scope.attackers) {
          if (attackers > 1 && robust === 'off' && scope.offOnlyForOneAttacker) continue
          for (const attack of scope.attacks) out.push({ algorithm, family, partition, robust, attack, attackers, rep: 0 })
        }
      }
    }
  return out
}

const pct = (x: number) => +(x * 100).toFixed(2)

async function runCell(c: Cell): Promise<CellResult> {
  const parsed = parseRoomConfig({
    algorithm: c.algorithm, dataset: scope.dataset, model: scope.model, partition: c.partition,
    batchSize: scope.batchSize, totalSteps: scope.steps, seed: scope.seed, robust: c.robust,
  })
  if (!parsed.ok) throw new Error(parsed.error)
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const spent = () => {
    const c = process.cpuUsage(c0)
    return { wallS: +((performance.now() - t0) / 1000).toFixed(1), cpuS: +((c.user + c.system) / 1e6).toFixed(1) }
  }
  try {
    const r: SimResult = await runSimulation({
      config: parsed.config, peers: scope.peers, evalEvery: scope.steps, evalSamples: scope.evalSamples,
      ...(c.attack ? { attack: c.attack, attackers: c.attackers } : {}),
    })
    return {
      ...c, honestMean: pct(r.honest.meanAccuracy), honestMin: pct(r.honest.minAccuracy), averagedModel: pct(r.finalTestAccuracy),
      perPeer: r.perPeerAccuracy.map(pct), diverged: r.diverged, stepsPerSec: +r.stepsPerSec.toFixed(2), stepsPerCpuSec: +r.stepsPerCpuSec.toFixed(2), ...spent(),
    }
  } catch (e) {
    return { ...c, honestMean: NaN, honestMin: NaN, averagedModel: NaN, perPeer: [], diverged: false, stepsPerSec: NaN, stepsPerCpuSec: NaN, ...spent(), error: (e as Error).message }
  }
}

const cleanOf = (results: CellResult[], c: Pick<Cell, 'algorithm' | 'partition' | 'robust'>, rep = 0) =>
  results.find((r) => r.attack === null && r.rep === rep && r.algorithm === c.algorithm && r.partition === c.partition && r.robust === c.robust)

/** The clean run's mean (or min) accuracy over the same peers that are honest in the attacked run. */
function baseline(results: CellResult[], c: Cell, of: 'mean' | 'min' = 'mean'): number {
  const clean = cleanOf(results, c)
  if (!clean || !clean.perPeer.length) return NaN
  const honest = clean.perPeer.slice(0, PEERS - c.attackers)
  return of === 'min' ? Math.min(...honest) : honest.reduce((a, b) => a + b, 0) / honest.length
}

/** Median over the clean repetitions of one algorithm × partition × robust mode. */
function cleanSpeed(results: CellResult[], c: Pick<Cell, 'algorithm' | 'partition' | 'robust'>, key: 'stepsPerSec' | 'stepsPerCpuSec'): number {
  return median(results.filter((r) => r.attack === null && r.algorithm === c.algorithm && r.partition === c.partition && r.robust === c.robust).map((r) => r[key]).filter(Number.isFinite))
}

/** Accuracy points the attack costs the honest peers (positive: worse than clean). */
function drop(results: CellResult[], r: CellResult): number {
  return +(baseline(results, r) - r.honestMean).toFixed(1)
}

function fmt(x: number): string {
  return Number.isFinite(x) ? (x > 0 ? x.toFixed(1) : x === 0 ? '0.0' : x.toFixed(1)) : '–'
}

function tables(results: CellResult[]): string {
  const lines: string[] = []
  const algs = scope.algorithms
  lines.push(`The price of robust in clean runs (no attacker): mean test accuracy (%) of the 8 peers' own models, and simulated swarm steps per CPU-second (median of ${scope.cleanReps} interleaved runs; wall-clock steps/s in the JSON) with robust ${scope.robust.join(' → ')}.`, '')
  lines.push('| partition | algorithm | accuracy | Δ points | steps per CPU-s | Δ speed |')
  lines.push('|---|---|---:|---:|---:|---:|')
  for (const p of scope.partitions)
    for (const a of algs) {
      const accs = scope.robust.map((robust) => cleanOf(results, { algorithm: a, partition: p, robust })?.honestMean ?? NaN)
      const sp = scope.robust.map((robust) => cleanSpeed(results, { algorithm: a, partition: p, robust }, 'stepsPerCpuSec'))
      const dAcc = accs.length === 2 ? fmt(+(accs[1] - accs[0]).toFixed(1)) : ''
      const dSp = sp.length === 2 ? `${fmt(+((sp[1] / sp[0] - 1) * 100).toFixed(1))} %` : ''
      lines.push(`| ${p} | ${a} | ${accs.map(fmt).join(' → ')} | ${dAcc} | ${sp.map(fmt).join(' → ')} | ${dSp} |`)
    }
  for (const p of scope.partitions)
    for (const k of scope.attackers) {
      lines.push('', `${p}, ${k} attacker${k > 1 ? 's' : ''} of ${PEERS}: accuracy points the honest peers lose against the clean run with the same robust setting (mean over the honest peers; in brackets the worst honest peer's loss against the clean run's worst of the same peers, when 5+ points). "div": the run diverged (the divergence rule stopped it).`, '')
      const modes = scope.robust.filter((rb) => results.some((x) => x.attackers === k && x.partition === p && x.robust === rb))
      const cols = algs.flatMap((a) => modes.map((rb) => `${a} ${rb}`))
      lines.push(`| attack | ${cols.join(' | ')} |`)
      lines.push(`|---|${cols.map(() => '---:').join('|')}|`)
      for (const atk of scope.attacks) {
        const row = algs.flatMap((a) => modes.map((rb) => {
          const r = results.find((x) => x.attack === atk && x.attackers === k && x.algorithm === a && x.partition === p && x.robust === rb)
          if (!r) return ' '
          if (r.error) return 'err'
          const d = drop(results, r)
          const worst = +(baseline(results, r, 'min') - r.honestMin).toFixed(1)
          const low = worst >= 5 ? ` (${fmt(worst)})` : ''
          return `${r.diverged ? 'div ' : ''}${fmt(d)}${low}`
        }))
        lines.push(`| ${atk} | ${row.join(' | ')} |`)
      }
    }
  return lines.join('\n')
}

const COLORS: Record<string, string> = { dpsgd: '#1f77b4', 'ad-psgd': '#2ca02c', asgd: '#ff7f0e', ssgd: '#d62728' }

/** Grouped bars: honest accuracy drop per attack, one bar per algorithm × robust (hatched: on), first partition and attacker count. */
function svg(results: CellResult[], partition: string, k: number): string {
  const attacks = scope.attacks
  const bars = scope.algorithms.flatMap((a) => scope.robust.map((rb) => ({ a, rb })))
  const W = 900, H = 380, L = 55, R = 150, T = 35, B = 60
  const groupW = (W - L - R) / attacks.length
  const barW = (groupW * 0.85) / bars.length
  const yMax = 100
  const py = (y: number) => T + (1 - Math.min(Math.max(y, 0), yMax) / yMax) * (H - T - B)
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<defs><pattern id="on" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="4" height="4" fill="white"/><path d="M0,4 L4,0" stroke="black" stroke-width="1"/></pattern></defs>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="13" font-weight="bold">Honest peers' accuracy lost to ${k} attacker${k > 1 ? 's' : ''} of ${PEERS} (${scope.dataset}, ${partition}, ${scope.steps} steps)</text>`,
  ]
  for (let y = 0; y <= yMax; y += 20)
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`)
  parts.push(`<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">accuracy points lost (clipped at 0)</text>`)
  attacks.forEach((atk, g) => {
    const x0 = L + g * groupW + groupW * 0.075
    bars.forEach(({ a, rb }, b) => {
      const r = results.find((x) => x.attack === atk && x.attackers === k && x.algorithm === a && x.partition === partition && x.robust === rb)
      const d = r && !r.error ? Math.max(0, drop(results, r)) : 0
      const x = x0 + b * barW
      const fill = COLORS[a] ?? '#888'
      parts.push(`<rect x="${x.toFixed(1)}" y="${py(d).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(py(0) - py(d)).toFixed(1)}" fill="${fill}"/>`)
      if (rb === 'on') parts.push(`<rect x="${x.toFixed(1)}" y="${py(d).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(py(0) - py(d)).toFixed(1)}" fill="url(#on)" opacity="0.45"/>`)
    })
    parts.push(`<text x="${(x0 + (bars.length * barW) / 2).toFixed(1)}" y="${H - B + 15}" text-anchor="middle">${atk}</text>`)
  })
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(0)}" y2="${py(0)}" stroke="#333"/>`)
  bars.forEach(({ a, rb }, i) => {
    const ly = T + 10 + i * 16
    parts.push(`<rect x="${W - R + 10}" y="${ly - 8}" width="14" height="10" fill="${COLORS[a] ?? '#888'}"/>`)
    if (rb === 'on') parts.push(`<rect x="${W - R + 10}" y="${ly - 8}" width="14" height="10" fill="url(#on)" opacity="0.45"/>`)
    parts.push(`<text x="${W - R + 30}" y="${ly + 1}">${a} robust ${rb}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n')
}

async function main(): Promise<void> {
  const todo = cells()
  const results: CellResult[] = []
  const t0 = performance.now()
  const loadBefore = load()
  console.log(`attacks: ${todo.length} runs (${JSON.stringify(scope)})`)
  const save = (done: boolean) => writeResult(outName, {
    scope, done, runs: todo.length, wallS: +((performance.now() - t0) / 1000).toFixed(0), loadBefore, loadAfter: load(),
    table: done ? tables(results) : undefined, results,
  })
  for (const [i, c] of todo.entries()) {
    const r = await runCell(c)
    results.push(r)
    const base = r.attack ? baseline(results, r) : NaN
    console.log(`[${i + 1}/${todo.length}] ${c.algorithm} ${c.partition} robust ${c.robust} ${c.attack ? `${c.attack} ×${c.attackers}` : `clean #${c.rep + 1}`}: ` +
      `honest ${fmt(r.honestMean)} % (min ${fmt(r.honestMin)}${r.attack ? `, clean ${fmt(base)}` : ''})${r.diverged ? ' diverged' : ''} ` +
      `${fmt(r.stepsPerSec)} steps/s (${fmt(r.stepsPerCpuSec)} per CPU-s), ${r.wallS} s (cpu ${r.cpuS} s)${r.error ? ` ERROR ${r.error}` : ''}`)
    // Partial results survive an interrupted run.
    if (i % 8 === 7) save(false)
  }
  const file = save(true)
  const md = tables(results)
  console.log(`\n${md}\n\nwrote ${file} in ${((performance.now() - t0) / 1000).toFixed(0)} s (${JSON.stringify(machine())})`)
  const svgFile = `docs/attacks/${outName}.svg`
  mkdirSync(dirname(svgFile), { recursive: true })
  writeFileSync(svgFile, svg(results, scope.partitions[scope.partitions.length - 1], scope.attackers[0]))
  console.log(`wrote ${svgFile}`)
  process.exit(results.some((r) => r.error) ? 1 : 0)
}

await main()
