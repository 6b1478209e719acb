import { z } from 'zod'
import { ALGORITHMS, DATASETS, MODELS, TOPOLOGIES, announcedConfigSchema, roomConfigSchema, type AlgorithmName, type RoomConfig } from '../config'
import { evictionRecordSchema, historyResponseSchema, historyRunSchema, runDivergenceSchema } from './history'
import { AWAY_REASONS, PEER_STAGES, backendSchema, linkReportSchema, peerIdSchema } from './signaling'
import { PROTOCOL_VERSION } from './version'

/**
 * Every JSON body of the HTTP API (signaling-server/http-api.ts), in one place: the server types
 * what it builds against these schemas (z.infer), the dashboard parses what it fetches with them,
 * and the tests read responses through the same types, so none of the three can drift alone.
 *
 * Two strengths per body where it matters:
 *  - `…Schema`: exactly what this server sends. Every field is required, so a field the server
 *    stops sending is a compile error in http-api.ts / rooms.ts, not a blank column on a page.
 *  - `client…Schema`: what the dashboard accepts. Fields an older server did not send yet are
 *    optional (the page shows a dash instead of nothing), and open-ended values (backend, stage)
 *    are plain strings, so a newer server's new value is shown as it is.
 * The tolerant ones are derived from the exact ones, never written out again.
 */

/**
 * Version of the contract in this file. Appending a field (optional in the client schemas)
 * keeps it; removing or retyping one bumps it. No response carries it yet: adding it would
 * change the bodies, and so far every change has been an append.
 */
export const HTTP_API_VERSION = 1 as const

const AGENTS = ['browser', 'node'] as const

// ---- errors ----

/** Every failure: `{ error, field? }`; `field` names the request part to fix (e.g. 'lr', 'peer'). */
export const errorBodySchema = z.object({ error: z.string(), field: z.string().optional() })
export type ErrorBody = z.infer<typeof errorBodySchema>

// ---- GET /healthz, GET /api/info ----

/** `ok` is false (HTTP 503) while the server cannot reach its room store (REDIS_URL). */
export const healthResponseSchema = z.object({ ok: z.boolean(), protocol: z.literal(PROTOCOL_VERSION), rooms: z.number().int() })
export type HealthResponse = z.infer<typeof healthResponseSchema>

/** The origin join links use and how it was chosen (signaling-server/public-origin.ts). */
export const infoResponseSchema = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  publicUrl: z.string(),
  publicUrlSource: z.enum(['PUBLIC_URL', 'request', 'lan']),
  /** Only this machine can open `publicUrl`: the host page warns the teacher. */
  localOnly: z.boolean(),
  /**
   * How this server does TLS (signaling-server/tls.ts): 'self-signed' (students see a certificate
   * warning once), 'certificate' (TLS_CERT/TLS_KEY), or 'none' (plain HTTP). Optional: older servers omit it.
   */
  tls: z.enum(['self-signed', 'certificate', 'none']).optional(),
})
export type InfoResponse = z.infer<typeof infoResponseSchema>

// ---- rooms ----

/** One volunteer of the roster, from its latest report (defaults until its first one). */
export const peerViewSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  agent: z.enum(AGENTS),
  joinedAt: z.number(),
  step: z.number(),
  globalStep: z.number(),
  loss: z.number().nullable(),
  accuracy: z.number().nullable(),
  /** null until the peer's first report. */
  backend: backendSchema.nullable(),
  backendReason: z.string().nullable(),
  /** Where the model runs: a worker thread or the thread that owns the mesh. */
  computeThread: z.enum(['worker', 'main']).nullable(),
  samplesPerSec: z.number(),
  stepsPerSec: z.number(),
  /** Samples it contributed to the current run (the ledger's count: kept across its reloads). */
  samples: z.number(),
  bytesSent: z.number(),
  bytesReceived: z.number(),
  neighbors: z.array(z.string()),
  /** Payload bytes per neighbour. */
  links: z.record(z.string(), linkReportSchema),
  lr: z.number().nullable(),
  h: z.number().nullable(),
  consensus: z.number().nullable(),
  stage: z.enum(PEER_STAGES),
  updaters: z.number().nullable(),
  /** Why the tab has no WebGPU or isolation (CAPABILITY_ISSUES); absent or [] when nothing is missing. */
  capability: z.array(z.string()).optional(),
  rejected: z.number(),
  /** Host fault injection in effect on this peer. */
  slowFactor: z.number(),
  addedLatencyMs: z.number(),
  /** Emulated link conditions on this peer's links (shared/link-conditions.ts); absent: none ('lan'). */
  link: z.string().optional(),
  /** Server clock (ms) of its latest report; compare with the view's `now`. */
  lastReportAt: z.number().nullable(),
  suspect: z.boolean(),
})
export type PeerView = z.infer<typeof peerViewSchema>

/** A volunteer outside the roster: still loading, or stepped out for a while (`away`). */
export const joiningPeerSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  agent: z.enum(AGENTS),
  joinedAt: z.number(),
  stage: z.enum(PEER_STAGES),
  away: z.enum(AWAY_REASONS).nullable(),
})
export type JoiningPeer = z.infer<typeof joiningPeerSchema>

/** One kept checkpoint: its run and step, when it was saved (its id for 'rollback') and by whom. */
export const checkpointInfoSchema = z.object({
  run: z.number().int(),
  step: z.number().int(),
  savedAt: z.number(),
  by: z.string().nullable(),
  current: z.boolean(),
})
export type CheckpointInfo = z.infer<typeof checkpointInfoSchema>

/**
 * One volunteer's contribution to the current run (signaling-server/rooms.ts credit()): samples
 * credited under its id, kept across reloads and absences and after it left; `share` is samples
 * over the run's total.
 */
export const leaderboardEntrySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  samples: z.number(),
  share: z.number(),
})
export type LeaderboardEntry = z.infer<typeof leaderboardEntrySchema>

/** signaling-server/rooms.ts `view()`: the room's live state, also spectators' 'room-state'. */
export const roomViewSchema = z.object({
  room: z.string(),
  code: z.string(),
  config: roomConfigSchema,
  run: z.number().int(),
  paused: z.boolean(),
  epoch: z.number().int(),
  /**
   * Who holds the room's roles now (`ps`: the parameter server of asgd/od-sgd rooms, else null;
   * `writer`: the peer whose model becomes the room checkpoint), and which ones the host pinned.
   * Unpinned roles go to the longest-serving unsuspected peers (signaling-server/roles.ts).
   */
  roles: z.object({
    ps: z.string().nullable(),
    writer: z.string().nullable(),
    pinned: z.object({ ps: z.string().nullable(), writer: z.string().nullable() }),
  }),
  checkpointStep: z.number().nullable(),
  /** The checkpoints kept for rollback, oldest first; `current` is the one resumes and downloads use. */
  checkpoints: z.array(checkpointInfoSchema),
  /** The current run diverged (the room paused itself there): step, when, loss and why. */
  diverged: runDivergenceSchema.nullable(),
  spectators: z.number().int(),
  joining: z.array(joiningPeerSchema),
  createdAt: z.number(),
  /** Server clock (ms) when this view was made. */
  now: z.number(),
  peers: z.array(peerViewSchema),
  /** The latest evictions, newest last. */
  evictions: z.array(evictionRecordSchema),
  /** The run's top contributors by samples (at most 20), including volunteers that left. */
  leaderboard: z.array(leaderboardEntrySchema),
})
export type RoomView = z.infer<typeof roomViewSchema>

/** Where students join, watch and look at the class screen (absolute URLs from the public origin). */
const roomLinksShape = { joinUrl: z.string(), dashboardUrl: z.string(), projectorUrl: z.string() }

/** GET /api/rooms/:room: the view plus links, which depend on who asks (the Host header). */
export const roomResponseSchema = roomViewSchema.extend({
  ...roomLinksShape,
  publicUrl: z.string(),
  /** The server knows no address other machines can reach: warn the teacher. */
  localOnly: z.boolean(),
})
export type RoomResponse = z.infer<typeof roomResponseSchema>

/** One room of GET /api/rooms. */
export const roomSummarySchema = z.object({
  room: z.string(),
  code: z.string(),
  algorithm: z.enum(ALGORITHMS),
  topology: z.enum(TOPOLOGIES),
  dataset: z.enum(DATASETS),
  model: z.enum(MODELS),
  peers: z.number().int(),
  spectators: z.number().int(),
  run: z.number().int(),
  paused: z.boolean(),
})
export const roomListSchema = z.object({ rooms: z.array(roomSummarySchema) })
export type RoomList = z.infer<typeof roomListSchema>

/** POST /api/rooms → 201. `hostToken` is shown once: it authorizes the control endpoint. */
export const createdRoomSchema = z.object({
  room: z.string(),
  code: z.string(),
  hostToken: z.string(),
  ...roomLinksShape,
  localOnly: z.boolean(),
  config: roomConfigSchema,
  paused: z.boolean(),
})
export type CreatedRoomResponse = z.infer<typeof createdRoomSchema>

// ---- POST /api/rooms/:room/control ----

export const CONTROL_ACTIONS = ['start', 'pause', 'resume', 'reset', 'new-run', 'kick', 'slow', 'latency', 'disconnect', 'rollback', 'pin'] as const
export type ControlActionName = (typeof CONTROL_ACTIONS)[number]

/** Each control field's own rule, shared by the request schema and the per-action shapes. */
const controlPeer = peerIdSchema
const controlFactor = z.number().min(1).max(100)
const controlMs = z.number().min(0).max(60_000)
/** A kept checkpoint's `savedAt` (RoomView.checkpoints); without it, 'rollback' goes one back. */
const controlSavedAt = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
export const PINNABLE_ROLES = ['ps', 'writer'] as const
export type PinnableRole = (typeof PINNABLE_ROLES)[number]
const controlRole = z.enum(PINNABLE_ROLES)
/**
 * `new-run`'s next config, e.g. `{ algorithm: 'ssgd' }`: the server merges it over that
 * algorithm's defaults and names a bad field (parseRoomConfig), so here only its type is kept.
 */
type NewRunConfig = Partial<RoomConfig> & { algorithm: AlgorithmName }
const newRunConfig = z.custom<NewRunConfig>((v) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && (ALGORITHMS as readonly unknown[]).includes((v as { algorithm?: unknown }).algorithm))

/**
 * The body as the server validates it: one object for every action. Which fields an action
 * needs is checked by the server afterwards, so it can answer "peer: required for action 'slow'"
 * (400) apart from "peer: not in this room" (404), and check `config` with parseRoomConfig.
 */
export const controlRequestSchema = z.object({
  action: z.enum(CONTROL_ACTIONS),
  peer: controlPeer.optional(),
  factor: controlFactor.optional(),
  ms: controlMs.optional(),
  config: z.unknown().optional(),
  savedAt: controlSavedAt.optional(),
  role: controlRole.optional(),
})
export type ControlRequest = z.infer<typeof controlRequestSchema>

/**
 * The same bodies per action, with the fields each one needs: what a client sends (the host
 * page's type, so a button cannot forget a peer). Every one of them passes controlRequestSchema.
 */
export const controlActionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('start') }),
  z.object({ action: z.literal('pause') }),
  z.object({ action: z.literal('resume') }),
  z.object({ action: z.literal('reset') }),
  z.object({ action: z.literal('new-run'), config: newRunConfig }),
  z.object({ action: z.literal('kick'), peer: controlPeer }),
  z.object({ action: z.literal('disconnect'), peer: controlPeer }),
  z.object({ action: z.literal('slow'), peer: controlPeer, factor: controlFactor }),
  z.object({ action: z.literal('latency'), peer: controlPeer, ms: controlMs }),
  /** Every volunteer reloads the kept checkpoint `savedAt` (default: the one before the current). */
  z.object({ action: z.literal('rollback'), savedAt: controlSavedAt.optional() }),
  /** Pins `role` to `peer` (a roster peer); without `peer`, unpins it (the server chooses again). */
  z.object({ action: z.literal('pin'), role: controlRole, peer: controlPeer.optional() }),
])
export type ControlAction = z.infer<typeof controlActionSchema>

/** 200: the room after the action. */
export const controlResponseSchema = z.object({
  ok: z.literal(true),
  action: z.enum(CONTROL_ACTIONS),
  run: z.number().int(),
  paused: z.boolean(),
  epoch: z.number().int(),
  config: roomConfigSchema,
})
export type ControlResponse = z.infer<typeof controlResponseSchema>

// ---- model routes ----

/** GET /api/rooms/:room/model (?format=json): the latest checkpoint as one JSON file. */
export const checkpointJsonSchema = z.object({
  format: z.literal('tabswarm-checkpoint'),
  version: z.literal(1),
  room: z.string(),
  run: z.number().int(),
  step: z.number().int(),
  schemaHash: z.string(),
  savedAt: z.number(),
  config: roomConfigSchema,
  byteLength: z.number().int(),
  /** The model's parameters, little-endian float32 in shared/model-shapes.ts order, base64. */
  weights: z.string(),
})
export type CheckpointJson = z.infer<typeof checkpointJsonSchema>

/**
 * What the server adds to the TensorFlow.js model's `userDefinedMetadata` (model.json and
 * ?format=tfjs; the rest of that file is the tfjs format, shared/model-shapes.ts tfjsArtifact).
 */
export const tfjsCheckpointMetadataSchema = z.object({
  room: z.string(),
  run: z.number().int(),
  step: z.number().int(),
  schemaHash: z.string(),
  algorithm: z.enum(ALGORITHMS),
})
export type TfjsCheckpointMetadata = z.infer<typeof tfjsCheckpointMetadataSchema>

// ---- what the dashboard accepts ----

/**
 * A roster peer as the dashboard reads it. Optional: what older servers did not send yet (the
 * page falls back, e.g. `globalStep ?? step`). Strings: values a newer server may add to.
 */
export const clientPeerSchema = peerViewSchema
  .extend({ backend: z.string().nullable(), stage: z.string() })
  .partial({
    name: true, agent: true, joinedAt: true, globalStep: true, backendReason: true, computeThread: true,
    stepsPerSec: true, samples: true, links: true, lr: true, h: true, consensus: true, stage: true,
    updaters: true, rejected: true, slowFactor: true, addedLatencyMs: true, lastReportAt: true, suspect: true,
  })
export type ClientPeer = z.infer<typeof clientPeerSchema>

export const clientJoiningPeerSchema = joiningPeerSchema.extend({ stage: z.string() }).partial({ away: true })

/** GET /api/rooms/:room as the dashboard reads it: beyond room, config and peers, all optional. */
export const clientRoomSchema = roomResponseSchema
  .extend({
    peers: z.array(clientPeerSchema), joining: z.array(clientJoiningPeerSchema),
    roles: roomViewSchema.shape.roles.partial({ writer: true, pinned: true }),
    config: announcedConfigSchema,
  })
  .partial({
    code: true, run: true, paused: true, epoch: true, roles: true, checkpointStep: true, checkpoints: true, diverged: true,
    spectators: true, joining: true, createdAt: true, now: true, evictions: true, leaderboard: true,
    joinUrl: true, dashboardUrl: true, projectorUrl: true, publicUrl: true, localOnly: true,
  })
export type ClientRoom = z.infer<typeof clientRoomSchema>

/** POST /api/rooms as the host page reads it: the token and the join link are what it needs. */
export const clientCreatedRoomSchema = createdRoomSchema.extend({ config: announcedConfigSchema }).partial({
  code: true, dashboardUrl: true, projectorUrl: true, localOnly: true, config: true, paused: true,
})
export type ClientCreatedRoom = z.infer<typeof clientCreatedRoomSchema>

/** GET /api/rooms/:room/history as the dashboard reads it (it needs the runs only). */
export const clientHistorySchema = historyResponseSchema
  .extend({ runs: z.array(historyRunSchema.extend({ config: announcedConfigSchema })) })
  .partial({ code: true, currentRun: true })
export type ClientHistory = z.infer<typeof clientHistorySchema>
