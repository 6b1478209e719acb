import { z } from 'zod'
import { roomConfigSchema } from '../config'

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
