import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { benchWorkerFlags, load, machine, median } from './common'
import type { RaceSample, RaceWorkerMessage } from './race-peer'
import { ALGORITHM_DESCRIPTORS, type AlgorithmName } from '../shared/algorithms/descriptors'
import { parseRoomConfig, type RoomConfig } from '../shared/config'
import type { LinkProfileName } from '../shared/link-conditions'
import { roundPlan } from '../shared/schedule'

/**
 * The race (docs/reproductions.md): N volunteers, each its own OS process with real WebRTC,
 * train one room until the swarm reaches target test accuracies or a time limit; per target the
 * wall-clock time, bytes sent per peer and sync rounds it took. No side effects on import: the
 * CLI (bench/race.ts) and the CI smoke (tests/integration/race-smoke.int.test.ts) both drive it.
 *
 * Definitions (docs/reproductions.md "How the race measures"):
 * - the clock starts when the host resumes the room, after every volunteer has loaded its data
 *   and entered the roster (the room is created paused), so start-up is not part of the race;
 * - the swarm's accuracy at a moment is the median over volunteers of each one's latest test
 *   accuracy (its own model on the room's test subset, measured by the session every ≥ 3 s); a
 *   volunteer that has not measured yet counts as 0;
 * - bytes per peer: the mean over volunteers of bytes sent on the mesh (max also kept);
 * - sync rounds: communication rounds the median volunteer has completed, from its step count —
 *   one per step for the per-step algorithms, and the boundaries of the room's sync rule
 *   (shared/schedule.ts roundPlan) for those that average every H steps.
 */

const WORKER = fileURLToPath(new URL('./race-peer.ts', import.meta.url))

export const BARRIER = 'barrier'
/** What a race row runs: an algorithm with its defaults, or the barrier baseline. */
export type RaceAlgorithm = AlgorithmName | typeof BARRIER

export interface RaceCase {
  algorithm: RaceAlgorithm
  link: LinkProfileName
  dataset: 'mnist' | 'fashion-mnist'
  partition: string
  /** One volunteer's steps take this many times longer (the host's 'slow' fault). */
  slowFactor?: number
  seed?: number
  /** Default: the config's default (3000, what each algorithm's schedule is written for). */
  totalSteps?: number
  /** Extra config fields over the algorithm's defaults (e.g. compression). */
  overrides?: Record<string, unknown>
}

export interface RaceOptions {
  peers: number
  timeLimitS: number
  /** Test accuracies (0–1); the run stops once the swarm reached the highest. */
  targets: number[]
  /** Seconds after the start at which the swarm's accuracy is reported. */
  accuracyAtS: number[]
  /** Bound on waiting for every volunteer to load and enter the roster. */
  startupLimitS?: number
  log?: (line: string) => void
}

export interface TargetResult {
  target: number
  reached: boolean
  timeS: number | null
  bytesPerPeer: number | null
  bytesPerPeerMax: number | null
  rounds: number | null
  steps: number | null
}

export interface RaceRun {
  label: string
  algorithm: RaceAlgorithm
  /** The algorithm the room actually ran (the barrier runs local-sgd with H = 1). */
  roomAlgorithm: AlgorithmName
  link: LinkProfileName
  dataset: string
  partition: string
  slowFactor: number
  peers: number
  seed: number
  config: RoomConfig
  startupS: number
  wallS: number
  stoppedBy: 'targets' | 'time-limit' | 'done' | 'error' | 'peer-exit'
  roundsMeaning: string
  targets: TargetResult[]
  accuracyAt: { t: number; accuracy: number | null }[]
  final: { timeS: number; accuracy: number; steps: number; rounds: number; bytesPerPeer: number }
  /** The swarm's accuracy at each evaluation (t in s from the start, bytes per peer mean). */
  curve: { t: number; accuracy: number; bytesPerPeer: number; rounds: number }[]
  perPeer: { name: string; finalStep: number; bytesSent: number; bytesReceived: number; lastAccuracy: number | null; stage: string; error: string | null }[]
  load: { before: number[]; after: number[] }
}

/** The row's name: the algorithm, `@codec` when not fp32, and `+slow×F` when a volunteer is slowed. */
export function caseLabel(c: RaceCase): string {
  const codec = typeof c.overrides?.compression === 'string' && c.overrides.compression !== 'fp32' ? `@${c.overrides.compression}` : ''
  return `${c.algorithm}${codec}${c.slowFactor && c.slowFactor > 1 ? `+slow×${c.slowFactor}` : ''}`
}

/**
 * The room config of a case: the algorithm's documented defaults with the case's dataset,
 * partition and link. The barrier baseline is "average everything every step behind a barrier":
 * local-sgd (ring all-reduce of the full fp32 model, every volunteer waits for all) with H = 1,
 * i.e. federated averaging after every local step with local-sgd's own lr schedule.
 */
export function raceConfig(c: RaceCase): RoomConfig {
  const algorithm: AlgorithmName = c.algorithm === BARRIER ? 'local-sgd' : c.algorithm
  const r = parseRoomConfig({
    algorithm, dataset: c.dataset, model: 'mlp', partition: c.partition, link: c.link, seed: c.seed ?? 0,
    ...(c.totalSteps ? { totalSteps: c.totalSteps } : {}),
    ...(c.algorithm === BARRIER ? { sync: { kind: 'constant', h: 1 }, compression: 'fp32' } : {}),
    ...c.overrides,
  })
  if (!r.ok) throw new Error(`race config for ${caseLabel(c)}: ${r.error}`)
  return r.config
}

/** What a run's `rounds` count for its algorithm (kept in the JSON next to them). */
export function roundsMeaning(config: RoomConfig): string {
  const d = ALGORITHM_DESCRIPTORS[config.algorithm]
  if (d.knobs.includes('sync')) return 'averagings of the sync rule (shared/schedule.ts roundPlan) completed by the median step'
  if (d.family === 'pairwise-gossip') return 'local steps: it averages with one free neighbour when it can, not every step (bytes show how often)'
  return 'steps: one exchange (gossip, all-reduce or parameter-server round trip) per step'
}

/** Communication rounds completed after `step` local steps (see the module comment). */
export function roundsAt(config: RoomConfig, step: number): number {
  if (!ALGORITHM_DESCRIPTORS[config.algorithm].knobs.includes('sync')) return step
  let n = 0
  for (const r of roundPlan(config.sync, config.schedule, config.lr, config.totalSteps)) {
    if (r.t + r.h > step) break
    n++
  }
  return n
}

async function api(url: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
  const text = await res.text()
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`)
  return JSON.parse(text) as Record<string, unknown>
}

function forkPeer(args: string[]): ChildProcess {
  return fork(WORKER, args, {
    execArgv: ['--import', 'tsx', ...benchWorkerFlags()], serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
}

let roomCounter = 0

/** Runs one case on the signaling server at `serverUrl` (real WebRTC between forked volunteers). */
export async function runRaceCase(serverUrl: string, c: RaceCase, o: RaceOptions): Promise<RaceRun> {
  const log = o.log ?? (() => {})
  const config = raceConfig(c)
  const label = caseLabel(c)
  const loadBefore = load()
  const roomName = `race-${c.algorithm}-${c.link}-${process.pid}-${++roomCounter}`
  const created = await api(`${serverUrl}/api/rooms`, { room: roomName, config, paused: true })
  const room = String(created.room)
  const token = String(created.hostToken)
  const controlUrl = `${serverUrl}/api/rooms/${encodeURIComponent(room)}/control`
  const n = o.peers
  const samples: RaceSample[][] = Array.from({ length: n }, () => [])
  const kids: ChildProcess[] = []
  const exited: boolean[] = Array(n).fill(false)
  // Every message wakes whoever waits: the race waits on events, the time limit is its only timer.
  let wake: () => void = () => {}
  const changed = (ms: number) => new Promise<void>((r) => {
    const timer = setTimeout(r, Math.max(1, ms))
    wake = () => (clearTimeout(timer), r())
  })
  const t0Fork = Date.now()
  for (let i = 0; i < n; i++) {
    const k = forkPeer([serverUrl, room, `race-${i}`])
    k.on('message', (m: RaceWorkerMessage) => {
      if (m.ev === 'samples') samples[i].push(...m.samples)
      wake()
    })
    k.on('exit', () => ((exited[i] = true), wake()))
    kids.push(k)
  }
  const latest = (i: number) => samples[i].at(-1)
  const stop = async () => {
    await Promise.all(kids.map((k, i) => exited[i] ? undefined : new Promise<void>((resolve) => {
      const timer = setTimeout(() => (k.kill('SIGKILL'), resolve()), 5000)
      k.once('exit', () => (clearTimeout(timer), resolve()))
      k.send({ op: 'stop' })
    })))
  }
  try {
    // Everyone loaded and in the roster of the paused room.
    const startupDeadline = Date.now() + (o.startupLimitS ?? 180) * 1000
    const ready = () => samples.every((_, i) => {
      const s = latest(i)
      return s !== undefined && s.self !== null && s.peers === n && s.stage === 'paused'
    })
    while (!ready()) {
      if (exited.some(Boolean) || samples.some((_, i) => latest(i)?.stage === 'error'))
        throw new Error(`a volunteer failed during start-up: ${JSON.stringify(samples.map((_, i) => latest(i)))}`)
      const left = startupDeadline - Date.now()
      if (left <= 0) throw new Error(`volunteers not all ready in ${o.startupLimitS ?? 180} s: ${JSON.stringify(samples.map((_, i) => latest(i)))}`)
      await changed(Math.min(left, 5000))
    }
    if (c.slowFactor && c.slowFactor > 1) await api(controlUrl, { action: 'slow', peer: latest(0)!.self, factor: c.slowFactor }, token)
    const startupS = (Date.now() - t0Fork) / 1000
    await api(controlUrl, { action: 'resume' }, token)
    const t0 = Date.now()
    log(`  ${label} on ${c.link}: ${n} volunteers ready after ${startupS.toFixed(0)} s, racing`)
    const top = Math.max(...o.targets)
    const end = t0 + o.timeLimitS * 1000
    let stoppedBy: RaceRun['stoppedBy'] = 'time-limit'
    let lastReport = t0
    for (;;) {
      const acc = swarmAccuracy(samples, Date.now())
      if (acc >= top) (stoppedBy = 'targets')
      else if (samples.every((_, i) => latest(i)?.stage === 'done')) stoppedBy = 'done'
      else if (samples.some((_, i) => ['error', 'diverged'].includes(latest(i)?.stage ?? ''))) stoppedBy = 'error'
      else if (exited.some(Boolean)) stoppedBy = 'peer-exit'
      else if (Date.now() >= end) stoppedBy = 'time-limit'
      else {
        if (Date.now() - lastReport > 15000) {
          lastReport = Date.now()
          log(`    t=${((Date.now() - t0) / 1000).toFixed(0)} s acc ${acc.toFixed(3)} steps ${samples.map((_, i) => latest(i)?.step ?? 0).join('/')}`)
        }
        await changed(Math.min(end - Date.now(), 15000))
        continue
      }
      break
    }
    const tEnd = Date.now()
    await stop()
    return summarize({ c, config, label, n, samples, t0, tEnd, startupS, stoppedBy, o, loadBefore })
  } finally {
    for (const k of kids) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL')
  }
}

/** Each volunteer's latest sample at or before `t`. */
function at(ss: RaceSample[], t: number): RaceSample | undefined {
  let lo = 0
  let hi = ss.length - 1
  let best: RaceSample | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (ss[mid].t <= t) ((best = ss[mid]), (lo = mid + 1))
    else hi = mid - 1
  }
  return best
}

function swarmAccuracy(samples: RaceSample[][], t: number): number {
  return median(samples.map((ss) => at(ss, t)?.accuracy ?? 0))
}

function summarize(a: {
  c: RaceCase; config: RoomConfig; label: string; n: number; samples: RaceSample[][]; t0: number; tEnd: number; startupS: number
  stoppedBy: RaceRun['stoppedBy']; o: RaceOptions; loadBefore: number[]
}): RaceRun {
  const { samples, t0, config } = a
  const view = (t: number) => {
    const ss = samples.map((s) => at(s, t))
    const bytes = ss.map((s) => s?.bytesSent ?? 0)
    const step = median(ss.map((s) => s?.step ?? 0))
    return {
      t: +((t - t0) / 1000).toFixed(1), accuracy: median(ss.map((s) => s?.accuracy ?? 0)),
      bytesPerPeer: Math.round(bytes.reduce((x, y) => x + y, 0) / bytes.length), bytesPerPeerMax: Math.max(...bytes),
      step: Math.round(step), rounds: roundsAt(config, Math.round(step)),
    }
  }
  // The swarm's accuracy changes only when some volunteer finishes an evaluation.
  const evalTimes = [...new Set(samples.flatMap((ss) => ss.filter((s, i) => s.t >= t0 && s.t <= a.tEnd && (i === 0 || ss[i - 1].evals !== s.evals)).map((s) => s.t)))].sort((x, y) => x - y)
  const curve = evalTimes.map(view)
  const targets = a.o.targets.map((target): TargetResult => {
    const hit = curve.find((p) => p.accuracy >= target)
    return hit
      ? { target, reached: true, timeS: hit.t, bytesPerPeer: hit.bytesPerPeer, bytesPerPeerMax: hit.bytesPerPeerMax, rounds: hit.rounds, steps: hit.step }
      : { target, reached: false, timeS: null, bytesPerPeer: null, bytesPerPeerMax: null, rounds: null, steps: null }
  })
  const fin = view(a.tEnd)
  const algorithm = a.c.algorithm
  return {
    label: a.label, algorithm, roomAlgorithm: config.algorithm, link: a.c.link, dataset: a.c.dataset, partition: a.c.partition,
    slowFactor: a.c.slowFactor ?? 1, peers: a.n, seed: config.seed, config,
    startupS: +a.startupS.toFixed(1), wallS: +((a.tEnd - t0) / 1000).toFixed(1), stoppedBy: a.stoppedBy, roundsMeaning: roundsMeaning(config), targets,
    accuracyAt: a.o.accuracyAtS.filter((s) => t0 + s * 1000 <= a.tEnd || a.stoppedBy === 'targets').map((s) => ({
      t: s, accuracy: t0 + s * 1000 <= a.tEnd ? view(t0 + s * 1000).accuracy : null,
    })),
    final: { timeS: fin.t, accuracy: fin.accuracy, steps: fin.step, rounds: fin.rounds, bytesPerPeer: fin.bytesPerPeer },
    curve: curve.map(({ t, accuracy, bytesPerPeer, rounds }) => ({ t, accuracy, bytesPerPeer, rounds })),
    perPeer: samples.map((ss, i) => {
      const s = ss.at(-1)
      return { name: `race-${i}`, finalStep: s?.step ?? 0, bytesSent: s?.bytesSent ?? 0, bytesReceived: s?.bytesReceived ?? 0, lastAccuracy: s?.accuracy ?? null, stage: s?.stage ?? 'none', error: s?.error ?? null }
    }),
    load: { before: a.loadBefore, after: load() },
  }
}

export interface RaceSummaryRow {
  dataset: string
  partition: string
  link: LinkProfileName
  label: string
  runs: number
  /** Per target: how many runs reached it, and the median [min, max] of time, bytes and rounds over those. */
  targets: { target: number; reached: number; timeS: Stat | null; bytesPerPeer: Stat | null; rounds: Stat | null }[]
  finalAccuracy: Stat
  accuracyAt: { t: number; accuracy: Stat | null }[]
}
export type Stat = { median: number; min: number; max: number }

function stat(xs: number[]): Stat | null {
  if (!xs.length) return null
  return { median: +median(xs).toFixed(4), min: Math.min(...xs), max: Math.max(...xs) }
}

/** Repeats of the same case folded into one row: medians and ranges. */
export function summarizeRuns(runs: RaceRun[]): RaceSummaryRow[] {
  const groups = new Map<string, RaceRun[]>()
  for (const r of runs) {
    const key = [r.dataset, r.partition, r.link, r.label].join('|')
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  return [...groups.values()].map((rs) => ({
    dataset: rs[0].dataset, partition: rs[0].partition, link: rs[0].link, label: rs[0].label, runs: rs.length,
    targets: rs[0].targets.map((t, j) => {
      const hit = rs.map((r) => r.targets[j]).filter((x) => x.reached)
      return {
        target: t.target, reached: hit.length,
        timeS: stat(hit.map((x) => x.timeS!)), bytesPerPeer: stat(hit.map((x) => x.bytesPerPeer!)), rounds: stat(hit.map((x) => x.rounds!)),
      }
    }),
    finalAccuracy: stat(rs.map((r) => r.final.accuracy))!,
    accuracyAt: rs[0].accuracyAt.map((p, j) => ({ t: p.t, accuracy: stat(rs.map((r) => r.accuracyAt[j]?.accuracy).filter((x): x is number => typeof x === 'number')) })),
  }))
}

const mb = (b: number) => (b / 1e6).toFixed(b < 1e7 ? 2 : 1)
const fmt = (s: Stat | null, f: (x: number) => string) => (s ? (s.min === s.max ? f(s.median) : `${f(s.median)} [${f(s.min)}–${f(s.max)}]`) : '—')

/** The rows as a markdown table (docs/reproductions.md pastes it). */
export function markdownTable(rows: RaceSummaryRow[]): string {
  const targets = rows[0]?.targets.map((t) => t.target) ?? []
  const head = ['dataset / partition', 'link', 'row', 'runs', ...targets.flatMap((t) => [`s to ${(t * 100).toFixed(0)} %`, `MB/peer to ${(t * 100).toFixed(0)} %`, `rounds to ${(t * 100).toFixed(0)} %`]), 'final acc']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const r of rows) {
    const cells = r.targets.flatMap((t) => t.reached === 0
      ? ['not reached', '—', '—']
      : [`${fmt(t.timeS, (x) => x.toFixed(0))}${t.reached < r.runs ? ` (${t.reached}/${r.runs})` : ''}`, fmt(t.bytesPerPeer, mb), fmt(t.rounds, (x) => x.toFixed(0))])
    lines.push(`| ${r.dataset} / ${r.partition} | ${r.link} | ${r.label} | ${r.runs} | ${cells.join(' | ')} | ${fmt(r.finalAccuracy, (x) => (x * 100).toFixed(1))} |`)
  }
  return lines.join('\n')
}

/**
 * Runs `cases` one after another on one server and rewrites `outFile` after each (the shape of
 * bench/common.ts writeResult: name, at, machine, loadavg, result), so a matrix stopped half-way
 * keeps what it measured. A case that fails is recorded and the next one runs.
 */
export async function runRace(a: {
  serverUrl: string; cases: RaceCase[]; options: (c: RaceCase) => RaceOptions; outFile: string; name: string; meta?: Record<string, unknown>
  log?: (line: string) => void
}): Promise<{ runs: RaceRun[]; failures: { case: RaceCase; error: string }[] }> {
  const log = a.log ?? (() => {})
  const runs: RaceRun[] = []
  const failures: { case: RaceCase; error: string }[] = []
  const loadBefore = load()
  const save = () => {
    mkdirSync(dirname(a.outFile), { recursive: true })
    writeFileSync(a.outFile, JSON.stringify({
      name: a.name, at: new Date().toISOString(), machine: machine(), loadavg: load(),
      result: { ...a.meta, load: { before: loadBefore, now: load() }, summary: summarizeRuns(runs), failures, runs },
    }, null, 2))
  }
  for (const [i, c] of a.cases.entries()) {
    log(`[${i + 1}/${a.cases.length}] ${c.dataset} ${c.partition} ${c.link} ${caseLabel(c)} seed ${c.seed ?? 0} (loadavg ${load().join('/')})`)
    try {
      const r = await runRaceCase(a.serverUrl, c, { log, ...a.options(c) })
      runs.push(r)
      log(`  → ${r.stoppedBy} after ${r.wallS} s, acc ${(r.final.accuracy * 100).toFixed(1)} %; ${r.targets.map((t) => `${t.target}: ${t.reached ? `${t.timeS} s ${(t.bytesPerPeer! / 1e6).toFixed(2)} MB ${t.rounds} rounds` : 'no'}`).join('; ')}`)
    } catch (e) {
      failures.push({ case: c, error: (e as Error).message.slice(0, 2000) })
      log(`  ✗ ${(e as Error).message.slice(0, 500)}`)
    }
    save()
  }
  return { runs, failures }
}
