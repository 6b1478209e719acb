import { publicConfig, type RoomConfig } from '../shared/config'
import type { PeerReport } from '../shared/protocol/signaling'
import {
  HISTORY_DELTA_MAX_POINTS, HISTORY_SNAPSHOT_MAX_POINTS, HISTORY_SNAPSHOT_MAX_RUNS,
  type HistoryDelta, type HistoryFeedRun, type HistoryPoint, type HistoryRun, type HistorySnapshot,
} from '../shared/protocol/history'
import { PROTOCOL_VERSION } from '../shared/protocol/version'

/**
 * Run history: one time series of swarm aggregates per run, for the dashboard's charts, the
 * run-comparison overlay and the CSV/JSON export. Pure: the caller passes the clock.
 */

export type { HistoryPoint }

/** A run's public history (HistoryRun) plus the sampler's bookkeeping. */
export interface RunRecord extends HistoryRun {
  /** Current sampling interval; doubles each time the series is thinned. */
  intervalMs: number
  lastSampleAt: number | null
  /** Sum of every peer's positive bytesSent deltas, so peers leaving never make it fall. */
  bytes: number
}

/** "At most once per second": the dashboard's charts need no finer grain than the report rate. */
export const HISTORY_SAMPLE_INTERVAL_MS = 1000
/**
 * Points kept per run in memory. At 1 Hz this is ~2.8 h before the first thinning; each thinning
 * halves the points and doubles HISTORY_SAMPLE_INTERVAL_MS, so memory stays bounded for any run.
 */
export const HISTORY_MAX_POINTS = 10_000

export function newRun(run: number, config: RoomConfig, started: number): RunRecord {
  return { run, config, started, points: [], diverged: null, intervalMs: HISTORY_SAMPLE_INTERVAL_MS, lastSampleAt: null, bytes: 0 }
}

/**
 * The swarm's value of a per-peer quantity: the median of the finite values, so one peer
 * reporting an extreme number (hostile or broken) cannot move the curve (a mean would follow it).
 */
export function median(xs: readonly (number | null | undefined)[]): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

export function aggregate(reports: readonly PeerReport[], bytes: number, t: number): HistoryPoint {
  return {
    t,
    loss: median(reports.map((r) => r.loss)),
    accuracy: median(reports.map((r) => r.accuracy)),
    globalStep: reports.reduce((m, r) => Math.max(m, r.globalStep, r.step), 0),
    bytes,
    peers: reports.length,
    lr: median(reports.map((r) => r.lr)),
    h: median(reports.map((r) => r.h)),
    consensus: median(reports.map((r) => r.consensus)),
  }
}

/** Appends, thinning the series to every other point when it reaches HISTORY_MAX_POINTS. */
export function appendPoint(run: RunRecord, p: HistoryPoint, maxPoints = HISTORY_MAX_POINTS): void {
  run.points.push(p)
  if (run.points.length >= maxPoints) {
    run.points = run.points.filter((_, i) => i % 2 === 0)
    run.intervalMs *= 2
  }
}

/** Takes a sample when the run's interval has passed; returns it (for persistence) or null. */
export function maybeSample(run: RunRecord, now: number, reports: readonly PeerReport[]): HistoryPoint | null {
  if (reports.length === 0) return null
  if (run.lastSampleAt !== null && now - run.lastSampleAt < run.intervalMs) return null
  run.lastSampleAt = now
  const p = aggregate(reports, run.bytes, Math.max(0, (now - run.started) / 1000))
  appendPoint(run, p)
  return p
}

const CSV_COLUMNS = ['run', 'algorithm', 't', 'loss', 'accuracy', 'globalStep', 'bytes', 'peers', 'lr', 'h', 'consensus'] as const

export function historyToCsv(runs: readonly RunRecord[]): string {
  const lines: string[] = [CSV_COLUMNS.join(',')]
  const cell = (x: number | string | null) => (x === null ? '' : String(x))
  for (const r of runs)
    for (const p of r.points)
      lines.push([r.run, r.config.algorithm, p.t, p.loss, p.accuracy, p.globalStep, p.bytes, p.peers, p.lr, p.h, p.consensus].map(cell).join(','))
  return lines.join('\n') + '\n'
}

// ---- the spectators' feed (shared/protocol/history.ts 'history' and 'history-delta') ----

/** The newest runs within the snapshot's point and run budgets, oldest first. */
export function historySnapshot(
  room: string, currentRun: number, runs: readonly RunRecord[],
  maxPoints = HISTORY_SNAPSHOT_MAX_POINTS, maxRuns = HISTORY_SNAPSHOT_MAX_RUNS,
): HistorySnapshot {
  const picked: HistoryFeedRun[] = []
  let budget = maxPoints
  const newestFirst = [...runs].sort((a, b) => b.run - a.run)
  for (const r of newestFirst) {
    // The newest run always goes in (it fits: HISTORY_MAX_POINTS < HISTORY_SNAPSHOT_MAX_POINTS).
    if (picked.length >= maxRuns || (picked.length > 0 && r.points.length > budget)) break
    budget -= r.points.length
    picked.push({ run: r.run, config: publicConfig(r.config), started: r.started, points: r.points, diverged: r.diverged, count: r.points.length })
  }
  return { v: PROTOCOL_VERSION, room, currentRun, runs: picked.reverse(), omittedRuns: runs.length - picked.length }
}

/** How far the feed of one room has gone: the run, its points sent and the last one (to notice thinning). */
export interface FeedCursor {
  run: number
  count: number
  last: HistoryPoint | null
}

/** The feed is up to date with everything `runs` holds now. */
export function feedCursorAtEnd(runs: readonly RunRecord[]): FeedCursor | null {
  const newest = runs.reduce<RunRecord | null>((m, r) => (!m || r.run > m.run ? r : m), null)
  if (!newest) return null
  return { run: newest.run, count: newest.points.length, last: newest.points.at(-1) ?? null }
}

/**
 * The next 'history-delta' after `cursor` (at most HISTORY_DELTA_MAX_POINTS points, one run), or
 * 'resync' when the run was thinned since (its points moved: only a snapshot can say it), or
 * null when nothing is new. `pending` says whether more is waiting after this delta.
 */
export function nextHistoryDelta(room: string, runs: readonly RunRecord[], cursor: FeedCursor | null):
  { delta: HistoryDelta; cursor: FeedCursor; pending: boolean } | 'resync' | null {
  const later = runs.filter((r) => !cursor || r.run >= cursor.run).sort((a, b) => a.run - b.run)
  for (const r of later) {
    const from = cursor && r.run === cursor.run ? cursor.count : 0
    if (from > 0 && (from > r.points.length || r.points[from - 1] !== cursor?.last)) return 'resync'
    if (r.points.length <= from) continue
    const points = r.points.slice(from, from + HISTORY_DELTA_MAX_POINTS)
    const count = from + points.length
    const delta: HistoryDelta = {
      v: PROTOCOL_VERSION, room, run: r.run, from, points, diverged: r.diverged,
      ...(from === 0 ? { config: publicConfig(r.config), started: r.started } : {}),
    }
    const pending = count < r.points.length || later.some((o) => o.run > r.run && o.points.length > 0)
    return { delta, cursor: { run: r.run, count, last: points[points.length - 1] }, pending }
  }
  return null
}
