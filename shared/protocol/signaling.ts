import { z } from 'zod'
import { linkProfileSchema } from '../link-conditions'
import { announcedConfigSchema, iceServerSchema } from '../config'
import type { HistoryDelta, HistorySnapshot } from './history'
import { PROTOCOL_VERSION } from './version'

/**
 * Every socket.io event between clients and the signaling server. The server validates each
 * payload with these schemas, stamps the sender from the socket (never from the payload) and
 * answers malformed input with an 'error' event; nothing in a room changes.
 */

const v = z.literal(PROTOCOL_VERSION)
export const roomNameSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'room: 1–64 letters, digits, - or _')
export const peerIdSchema = z.string().min(1).max(64)
export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const
export const backendSchema = z.enum(BACKENDS)
export type BackendName = z.infer<typeof backendSchema>

/** 'error' was appended later (the tab hit a fatal error and stopped); older clients never send it. */
export const PEER_STAGES = ['loading', 'connecting', 'training', 'paused', 'stalled', 'done', 'error', 'diverged'] as const

/**
 * A run that diverged (shared/divergence.ts): where a peer saw it, or where the room decided it
 * (the first report that made at least half of the roster diverged).
 */
export const divergenceSchema = z.object({
  step: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Mean training loss of the window that fired; null when it was not finite. */
  loss: z.number().nullable(),
  reason: z.string().max(200),
})
export type DivergenceReport = z.infer<typeof divergenceSchema>

// ---- client → server ----
export const joinSchema = z.object({
  v,
  room: roomNameSchema,
  role: z.enum(['volunteer', 'spectator']),
  /** Display name (optional, shown on the dashboard). */
  name: z.string().max(40).optional(),
  /** 'browser' or 'node' volunteer. */
  agent: z.enum(['browser', 'node']).default('browser'),
  /**
   * Proof of a long-lived key pair (shared/identity.ts): the public key and its signature over
   * this socket's `hello` challenge and the room. The peer's id is then derived from the key, so
   * it survives reloads and reconnects; without it the id is the socket's (appended later).
   */
  identity: z.object({ publicKey: z.string().min(1).max(256), signature: z.string().min(1).max(256) }).optional(),
  /**
   * This client applies 'membership-delta' (appended later): it gets roster changes as deltas
   * instead of the whole roster on every change. Without it, every change is a full 'membership'.
   */
  deltas: z.boolean().optional(),
  /**
   * Spectators: send the run history once ('history') and then its new points
   * ('history-delta'; shared/protocol/history.ts). Appended later; without it, none.
   */
  history: z.boolean().optional(),
})
export type JoinRequest = z.infer<typeof joinSchema>

export const signalSchema = z.object({
  v,
  to: peerIdSchema,
  /** Opaque simple-peer signal (SDP or ICE candidate); the server never interprets it. */
  data: z.record(z.string(), z.unknown()),
})

/**
 * Bounds on what a peer may claim (docs/security.md): every number finite and within what an
 * honest peer can reach, every collection no larger than a room can be. The server further
 * checks reports against the roster and the clock (signaling-server/rooms.ts sanitizeReport).
 */
export const REPORT_LIMITS = {
  /** Steps and sample counts: far beyond any run (a room's totalSteps is at most 1e7). */
  count: 1e12,
  /** Bytes a peer says it moved: a petabyte. */
  bytes: 1e15,
  /** Losses above this are kept as this in the record (one peer's blow-up cannot skew a curve's axis). */
  loss: 1e6,
  /** Consensus distance and learning rate are kept up to these in the record. */
  consensus: 1e12,
  lr: 1e3,
  rate: 1e9,
  /** Links and neighbours: a room's roster cap (rooms.ts MAX_PEERS_PER_ROOM). */
  peers: 256,
} as const
const count = z.number().min(0).max(REPORT_LIMITS.count)
const bytes = z.number().min(0).max(REPORT_LIMITS.bytes)
const rate = z.number().min(0).max(REPORT_LIMITS.rate)

/** ICE candidate types (RTCIceCandidateType): on a host, from a STUN server, peer-reflexive, on a TURN relay. */
export const CANDIDATE_TYPES = ['host', 'srflx', 'prflx', 'relay'] as const
export type CandidateType = (typeof CANDIDATE_TYPES)[number]
const candidateTypeSchema = z.enum(CANDIDATE_TYPES)

/**
 * How one link connects (client/mesh/connectivity.ts, from RTCPeerConnection.getStats()): the
 * candidate types this side gathered, the selected pair's local and remote types (null until a
 * pair is selected) and its current round-trip time. Appended later: older clients omit it.
 */
export const linkConnectivitySchema = z.object({
  gathered: z.array(candidateTypeSchema).max(CANDIDATE_TYPES.length),
  local: candidateTypeSchema.nullable(),
  remote: candidateTypeSchema.nullable(),
  rttMs: z.number().min(0).max(600_000).nullable(),
})
export type LinkConnectivity = z.infer<typeof linkConnectivitySchema>

export const linkReportSchema = z.object({ sent: bytes, received: bytes, ice: linkConnectivitySchema.optional() })

/**
 * What keeps a tab from WebGPU or from cross-origin isolation, as client/runtime/backend.ts
 * diagnoses it (README "Joining from another machine on the LAN"; the volunteer page,
 * client/ui/volunteer/CapabilityNotice.tsx, says what fixes each):
 *   insecure-context  plain http:// on a network address: no WebGPU, no SharedArrayBuffer
 *   no-webgpu-api     the browser has no navigator.gpu
 *   no-adapter        navigator.gpu found no adapter (driver, or WebGPU disabled)
 *   gpu-blocklisted   no adapter, and WebGL renders in software: the GPU is blocklisted or absent
 *   software-adapter  only a software (fallback) adapter, slower than wasm, so it is skipped
 *   not-isolated      no crossOriginIsolated: lap-sgd runs one updater, wasm one thread
 */
export const CAPABILITY_ISSUES = ['insecure-context', 'no-webgpu-api', 'no-adapter', 'gpu-blocklisted', 'software-adapter', 'not-isolated'] as const
export type CapabilityIssue = (typeof CAPABILITY_ISSUES)[number]

export const reportSchema = z.object({
  v,
  step: count.int(),
  globalStep: count.int().default(0),
  // Cross-entropy (and every loss here) is ≥ 0; a diverging run's loss can be huge, so the server
  // caps it for the record (REPORT_LIMITS.loss) instead of refusing an honest report.
  loss: z.number().min(0).nullable(),
  accuracy: z.number().min(0).max(1).nullable(),
  backend: backendSchema,
  backendReason: z.string().max(200).optional(),
  samplesPerSec: rate,
  stepsPerSec: rate.default(0),
  samples: count.default(0),
  bytesSent: bytes,
  bytesReceived: bytes,
  neighbors: z.array(peerIdSchema).max(REPORT_LIMITS.peers),
  // Counted before the entries are parsed: 300k entries must cost a key count, not a parse.
  links: z.unknown()
    .refine((l) => typeof l !== 'object' || l === null || Object.keys(l).length <= REPORT_LIMITS.peers, `at most ${REPORT_LIMITS.peers} links`)
    .pipe(z.record(peerIdSchema, linkReportSchema))
    .default({}),
  // Measurements a diverging (honest) run can blow up: only impossible values are refused here,
  // the server caps the rest for the record (signaling-server/rooms.ts sanitizeReport).
  lr: z.number().min(0).nullable().default(null),
  h: z.number().min(0).max(REPORT_LIMITS.count).nullable().default(null),
  consensus: z.number().min(0).nullable().default(null),
  stage: z.enum(PEER_STAGES).default('training'),
  /** Set with stage 'diverged': this peer's model diverged and it stopped training (appended later). */
  diverged: divergenceSchema.optional(),
  updaters: z.number().int().min(0).max(64).optional(),
  rejected: count.int().default(0),
  /**
   * Host fault injection in effect on this peer (appended later, optional: older clients omit
   * them), so the dashboard can show *why* a peer is slow: a step slowed by this factor, and
   * this many ms added before every message it sends.
   */
  slowFactor: z.number().min(1).max(100).optional(),
  addedLatencyMs: z.number().min(0).max(60_000).optional(),
  /** Emulated link conditions on this peer's links (shared/link-conditions.ts), when not 'lan'; a peer may override the room's. */
  link: linkProfileSchema.optional(),
  /** Where the peer's model runs: a worker thread, or the thread that owns its mesh and page (optional: older clients omit it). */
  computeThread: z.enum(['worker', 'main']).optional(),
  /** Why this tab lacks WebGPU or cross-origin isolation (CAPABILITY_ISSUES; optional: older clients and Node peers omit it). */
  capability: z.array(z.enum(CAPABILITY_ISSUES)).max(CAPABILITY_ISSUES.length).optional(),
})
export type PeerReport = z.infer<typeof reportSchema>

export const suspectSchema = z.object({ v, peer: peerIdSchema, reason: z.string().max(200) })

/**
 * A joined volunteer has its data and model and can train: the server adds it to the roster.
 * Until then it is "joining" and no peer's topology includes it.
 */
export const readySchema = z.object({ v })

/**
 * Why a volunteer steps out of the roster for a while without leaving the room: its user pressed
 * Pause, or its tab has been hidden (browsers throttle hidden tabs to a crawl). Appended later.
 */
export const AWAY_REASONS = ['paused', 'hidden'] as const
export type AwayReason = (typeof AWAY_REASONS)[number]

/**
 * A roster member steps out: the server takes it out of the roster (a new membership epoch, so
 * neighbours stop waiting for it at once) but keeps it joined and pending — no eviction, no
 * cooldown. Coming back is an ordinary `ready`, as for a pending joiner.
 */
export const awaySchema = z.object({ v, reason: z.enum(AWAY_REASONS) })

/** A peer's model, uploaded (binary) for the room checkpoint and the "download model" button. */
export const checkpointSchema = z.object({
  v,
  step: z.number().int().min(0),
  schemaHash: z.string().max(64),
  params: z.instanceof(Uint8Array).or(z.instanceof(ArrayBuffer)),
})

// ---- server → client ----
export const membershipSchema = z.object({
  v,
  room: roomNameSchema,
  epoch: z.number().int().min(0),
  peers: z.array(peerIdSchema),
  /**
   * `ps`: the parameter server (asgd/od-sgd rooms); `writer`: the peer that uploads the room
   * checkpoint (appended later: older servers omit it and peers[0] writes).
   */
  roles: z.object({ ps: peerIdSchema.nullable(), writer: peerIdSchema.nullable().default(null) }),
  config: announcedConfigSchema,
  /** Run number within the room (a host's "new run" bumps it; peers restart training). */
  run: z.number().int().min(0),
  paused: z.boolean(),
  /**
   * The current run diverged: the room paused itself and waits for the host's new run
   * (appended later: older servers omit it).
   */
  diverged: divergenceSchema.extend({ at: z.number() }).nullable().default(null),
})
export type MembershipAnnouncement = z.infer<typeof membershipSchema>

/**
 * A roster change as a delta from epoch `base` (membership changes cost O(change), not O(room)):
 * the new roster is the old one without `removed`, then `added` appended in order. Roles, pause
 * and divergence are repeated (small); a new run or config comes as a full 'membership'. A
 * client whose epoch is not `base` asks for the whole roster with 'sync'.
 */
export const membershipDeltaSchema = z.object({
  v,
  room: roomNameSchema,
  epoch: z.number().int().min(0),
  base: z.number().int().min(0),
  run: z.number().int().min(0),
  added: z.array(peerIdSchema).max(REPORT_LIMITS.peers),
  removed: z.array(peerIdSchema).max(REPORT_LIMITS.peers),
  roles: membershipSchema.shape.roles,
  paused: z.boolean(),
  diverged: membershipSchema.shape.diverged,
})
export type MembershipDelta = z.infer<typeof membershipDeltaSchema>

/** Applies a delta to the membership it was computed from; null when `m` is not its base (resync). */
export function applyMembershipDelta(m: MembershipAnnouncement, d: MembershipDelta): MembershipAnnouncement | null {
  if (m.room !== d.room || m.epoch !== d.base || m.run !== d.run) return null
  const removed = new Set(d.removed)
  const peers = [...m.peers.filter((p) => !removed.has(p)), ...d.added]
  if (new Set(peers).size !== peers.length) return null
  return { ...m, epoch: d.epoch, peers, roles: d.roles, paused: d.paused, diverged: d.diverged }
}

/**
 * Server → volunteer, over its own socket only (appended later): STUN/TURN servers set on the
 * server (signaling-server/turn.ts), used in addition to the room's `iceServers`. TURN entries
 * carry short-lived credentials issued to this volunteer; a fresh grant arrives before
 * `expiresAt` (null: nothing in it expires). New links use the latest grant; links already up
 * keep the TURN allocation they made.
 */
export const iceServersGrantSchema = z.object({
  v,
  iceServers: z.array(iceServerSchema).max(16),
  expiresAt: z.number().nullable(),
})
export type IceServersGrant = z.infer<typeof iceServersGrantSchema>

/** Volunteer → server: send me a fresh 'ice-servers' grant (rate-bounded; the server also pushes one before expiry). */
export const iceServersRequestSchema = z.object({ v })

/** Client → server: send me the whole membership (my epoch is not a delta's base). */
export const syncSchema = z.object({ v })

export const joinedSchema = z.object({ v, self: peerIdSchema, room: roomNameSchema })

/**
 * Server → volunteer: where it stands in the current run (signaling-server/rooms.ts credit()):
 * the samples credited to its id (across reloads), its place among the run's contributors
 * (`rank` 0 while it has none), and its share of the run's samples. Appended later.
 */
export const creditSchema = z.object({
  v,
  samples: z.number().min(0),
  rank: z.number().int().min(0),
  of: z.number().int().min(0),
  share: z.number().min(0).max(1),
  total: z.number().min(0),
  /** Its reported neighbours' display names (null: none given). */
  neighbours: z.array(z.object({ id: peerIdSchema, name: z.string().max(64).nullable() })).max(REPORT_LIMITS.peers).default([]),
})
export type Credit = z.infer<typeof creditSchema>

/**
 * Sent once on every new connection: a fresh random challenge the client signs to prove its
 * identity key at join (shared/identity.ts). A connection has one challenge for its lifetime.
 */
export const helloSchema = z.object({ v, challenge: z.string().min(16).max(128) })

export const relayedSignalSchema = z.object({ v, from: peerIdSchema, data: z.record(z.string(), z.unknown()) })

export const serverErrorSchema = z.object({ v, event: z.string(), code: z.string(), message: z.string() })

/**
 * A join the server refused. `retryAfterMs` is set when waiting helps (code 'cooldown': this
 * peer was evicted recently and must sit out a while); otherwise retrying will not help.
 */
export class JoinRejectedError extends Error {
  constructor(readonly code: string, message: string, readonly retryAfterMs: number | null = null) {
    super(`join rejected: ${code}: ${message}`)
    this.name = 'JoinRejectedError'
  }
}

/**
 * With several server processes (docs/deploy.md): the room is served under the name `room`
 * (it was asked for by its join code). The client reconnects with `room` as its routing key
 * and joins by that name.
 */
export class RoomMovedError extends JoinRejectedError {
  constructor(readonly room: string, message: string) {
    super('moved', message)
    this.name = 'RoomMovedError'
  }
}

/** Host fault injection and control, forwarded to the affected peers. */
export const peerCommandSchema = z.discriminatedUnion('type', [
  z.object({ v, type: z.literal('slow'), factor: z.number().min(1).max(100) }),
  z.object({ v, type: z.literal('latency'), ms: z.number().min(0).max(60_000) }),
  z.object({ v, type: z.literal('disconnect') }),
  /** Reload the room checkpoint (the host rolled back to it); `savedAt` names it (appended later). */
  z.object({ v, type: z.literal('restore-checkpoint'), step: z.number().int().min(0), savedAt: z.number().optional() }),
])
export type PeerCommand = z.infer<typeof peerCommandSchema>

export interface ClientToServerEvents {
  join: (payload: unknown, ack?: (r: unknown) => void) => void
  signal: (payload: unknown) => void
  report: (payload: unknown) => void
  suspect: (payload: unknown) => void
  ready: (payload: unknown) => void
  away: (payload: unknown) => void
  checkpoint: (payload: unknown) => void
  leave: (payload?: unknown) => void
  sync: (payload: unknown) => void
  'ice-servers': (payload: unknown) => void
}

export interface ServerToClientEvents {
  hello: (p: z.infer<typeof helloSchema>) => void
  joined: (p: z.infer<typeof joinedSchema>) => void
  credit: (p: Credit) => void
  membership: (p: MembershipAnnouncement) => void
  'membership-delta': (p: MembershipDelta) => void
  signal: (p: z.infer<typeof relayedSignalSchema>) => void
  error: (p: z.infer<typeof serverErrorSchema>) => void
  command: (p: PeerCommand) => void
  'ice-servers': (p: IceServersGrant) => void
  /** Spectators: the room's live state, same shape as GET /api/rooms/:room. */
  'room-state': (p: unknown) => void
  /** Spectators that joined with `history: true`: the run history, then its new points. */
  history: (p: HistorySnapshot) => void
  'history-delta': (p: HistoryDelta) => void
}
