import { z } from 'zod'
import { announcedConfigSchema, roomConfigSchema } from '../config'
import { PROTOCOL_VERSION } from './version'

/**
 * Shapes the server's HTTP API returns for run history and evictions, shared by the server
 * (which builds them), the dashboard (which validates what it fetched) and the persistence layer
 * (which reads them back from SQLite). One definition, so the three cannot drift apart.
 */

/** One swarm-wide sample. `t` is seconds since the run started (runs overlay on one axis). */
export const historyPointSchema = z.object({
  t: z.number(),
  /** Medians over the peers that reported a finite value (one extreme peer cannot move them); null when none did. */
  loss: z.number().nullable(),
  accuracy: z.number().nullable(),
  globalStep: z.number(),
  /** WebRTC payload bytes sent by all peers during this run (monotone over the run). */
  bytes: z.number(),
  peers: z.number(),
  lr: z.number().nullable(),
  h: z.number().nullable(),
  consensus: z.number().nullable(),
})
export type HistoryPoint = z.infer<typeof historyPointSchema>

/**
 * Where a run diverged (shared/divergence.ts): at which global step, when (wall clock ms), the
 * loss that fired the rule and why. The room paused itself there. A run's history and the room
 * view (shared/protocol/http.ts) both carry it.
 */
export const runDivergenceSchema = z.object({ step: z.number(), at: z.number(), loss: z.number().nullable(), reason: z.string() })
export type RunDivergence = z.infer<typeof runDivergenceSchema>

export const historyRunSchema = z.object({
  run: z.number().int(),
  config: roomConfigSchema,
  /** Wall clock (ms since 1970) when the run started. */
  started: z.number(),
  points: z.array(historyPointSchema),
  /** Set when the run diverged (runDivergenceSchema); older servers omit it. */
  diverged: runDivergenceSchema.nullable().default(null),
})
export type HistoryRun = z.infer<typeof historyRunSchema>

/**
 * GET /api/rooms/:room/history?format=json, as the server sends it. The dashboard reads it with
 * the more forgiving clientHistorySchema (shared/protocol/http.ts).
 */
export const historyResponseSchema = z.object({
  room: z.string(),
  code: z.string(),
  /** The room's current run number (a host's new run or reset bumps it). */
  currentRun: z.number().int(),
  runs: z.array(historyRunSchema),
})
export type HistoryResponse = z.infer<typeof historyResponseSchema>

/** One entry of GET /api/rooms/:room `evictions` (newest last). */
export const evictionRecordSchema = z.object({
  peer: z.string(),
  name: z.string().nullable(),
  /** The last reporter's reason, e.g. "rejected 3 messages (last: NaN in parameters)". */
  reason: z.string(),
  reporters: z.array(z.string()),
  at: z.number(),
  /** How long the evicted peer must wait before it may train in this room again. */
  cooldownMs: z.number(),
  /**
   * What decided it (appended later): 'neighbours', a majority of the peer's own topology
   * neighbours; 'server', a neighbour's report together with the server's own observation
   * (no report from the peer for a while). `evidence` says it in words.
   */
  basis: z.enum(['neighbours', 'server']).optional(),
  evidence: z.string().optional(),
})
export type EvictionRecord = z.infer<typeof evictionRecordSchema>

// ---- the spectators' history feed (socket.io; docs/architecture.md "The server") ----

/**
 * A spectator that joins with `history: true` gets the run history once ('history', a snapshot)
 * and then only the points sampled since ('history-delta'), so watching a run costs the server
 * O(new points) instead of the whole series on every poll. The HTTP route stays for exports and
 * scripts. Both events carry the protocol version like every other socket event.
 */

/**
 * Points in one snapshot, over all its runs. The newest runs come first until this is spent (a
 * run's history is at most HISTORY_MAX_POINTS = 10,000, so the current run always fits); older
 * runs are left out and counted in `omittedRuns` (the CSV/JSON export still has them). At
 * ~130 bytes a point this bounds a snapshot to ~2.6 MB.
 */
export const HISTORY_SNAPSHOT_MAX_POINTS = 20_000
/** Runs in one snapshot (the run-comparison overlay reads a dozen at most). */
export const HISTORY_SNAPSHOT_MAX_RUNS = 20
/**
 * Points in one 'history-delta'. The server samples a run at most once a second
 * (HISTORY_SAMPLE_INTERVAL_MS) and pushes at most once a second, so one point per message is
 * the norm; the bound keeps a message small whatever happens.
 */
export const HISTORY_DELTA_MAX_POINTS = 64

/** A run in the snapshot: its points and how many the server holds (`count`, the next delta's `from`). */
export const historyFeedRunSchema = historyRunSchema.extend({ config: announcedConfigSchema, count: z.number().int().min(0) })
export type HistoryFeedRun = z.infer<typeof historyFeedRunSchema>

export const historySnapshotSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  room: z.string(),
  currentRun: z.number().int(),
  runs: z.array(historyFeedRunSchema).max(HISTORY_SNAPSHOT_MAX_RUNS),
  /** Older runs not in this snapshot (HISTORY_SNAPSHOT_MAX_POINTS). */
  omittedRuns: z.number().int().min(0),
})
export type HistorySnapshot = z.infer<typeof historySnapshotSchema>

/**
 * Points appended to run `run` at the server's index `from`. The first delta of a new run
 * (`from` 0) carries its `config` and `started`. A client whose count for the run is not `from`
 * missed something (the server thins long series) and asks for a snapshot again.
 */
export const historyDeltaSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  room: z.string(),
  run: z.number().int(),
  from: z.number().int().min(0),
  points: z.array(historyPointSchema).min(1).max(HISTORY_DELTA_MAX_POINTS),
  config: announcedConfigSchema.optional(),
  started: z.number().optional(),
  diverged: runDivergenceSchema.nullable(),
})
export type HistoryDelta = z.infer<typeof historyDeltaSchema>

/** What a spectator page keeps of the feed: runs oldest first, each with the server's count. */
export interface HistoryFeedState {
  room: string
  runs: HistoryFeedRun[]
  omittedRuns: number
}

export function historyFromSnapshot(s: HistorySnapshot): HistoryFeedState {
  return { room: s.room, runs: [...s.runs].sort((a, b) => a.run - b.run), omittedRuns: s.omittedRuns }
}

/**
 * Applies a delta; null when it does not follow what the state holds (the caller resyncs).
 * Points the state already has (a snapshot taken after the delta's base) are skipped; a delta
 * that starts an unknown run at 0 with its config opens it; the state keeps at most
 * HISTORY_SNAPSHOT_MAX_RUNS runs.
 *
 * @example
 * const next = applyHistoryDelta(state, delta) ?? (requestSnapshot(), state)
 */
export function applyHistoryDelta(state: HistoryFeedState, d: HistoryDelta): HistoryFeedState | null {
  if (d.room !== state.room) return null
  const i = state.runs.findIndex((r) => r.run === d.run)
  if (i < 0) {
    if (d.from !== 0 || !d.config || d.started === undefined) return null
    // A run older than every kept one was left out on purpose (the snapshot's budget).
    if (state.runs.length && d.run < state.runs[0].run) return state
    const run: HistoryFeedRun = { run: d.run, config: d.config, started: d.started, points: d.points, diverged: d.diverged, count: d.points.length }
    const runs = [...state.runs, run].sort((a, b) => a.run - b.run)
    const drop = Math.max(0, runs.length - HISTORY_SNAPSHOT_MAX_RUNS)
    return { ...state, runs: runs.slice(drop), omittedRuns: state.omittedRuns + drop }
  }
  const r = state.runs[i]
  // A snapshot taken between two pushes already holds the delta's first points: skip those.
  if (d.from > r.count) return null
  const fresh = d.points.slice(r.count - d.from)
  const runs = [...state.runs]
  runs[i] = { ...r, points: fresh.length ? [...r.points, ...fresh] : r.points, count: r.count + fresh.length, diverged: d.diverged }
  return { ...state, runs }
}
