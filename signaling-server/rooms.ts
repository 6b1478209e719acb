import { z } from 'zod'
import { ALGORITHM_DESCRIPTORS, algorithmsWhere } from '../shared/algorithms/descriptors'
import { DATASETS, MODELS, defaultConfig, publicConfig, type RoomConfig } from '../shared/config'
import { friendlyName, normalizeName } from '../shared/names'
import { evictionRecordSchema, type EvictionRecord } from '../shared/protocol/history'
import type { LeaderboardEntry, PeerView, RoomView } from '../shared/protocol/http'
import { modelLayout } from '../shared/model-shapes'
import { REPORT_LIMITS, type AwayReason, type MembershipAnnouncement, type PeerReport } from '../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../shared/protocol/version'
import { appendPoint, median, newRun as makeRun, maybeSample, type HistoryPoint, type RunRecord } from './history'
import { makeJoinCode, normalizeJoinCode } from './join-code'
import {
  SILENT_AFTER_MS, SUSPICION_TTL_MS, addStrike, chooseRole, evictionBasis, evidencePeers, implausibleParams, l2Norm,
  type RoleCandidate, type Strikes,
} from './trust'

/**
 * The room registry: pure state, no sockets. A two-way index (room → roster, peer → room) driven
 * by join/leave/report/suspect calls whose results tell the socket layer what to broadcast.
 * Durable changes go to an injected RoomStore: persistence.ts (SQLite, one process) or
 * redis-store.ts (Redis, several processes; docs/deploy.md).
 */

export const MAX_ROOMS = 10_000
/**
 * A room with nobody in it and no activity for this long is deleted with its history and
 * checkpoint, so rooms cannot pile up until the server refuses new ones (docs/security.md).
 * ROOM_TTL_DAYS (env) changes it.
 */
export const ROOM_IDLE_TTL_MS = 7 * 24 * 3600_000
/** A room that a volunteer's join created (no host, no token) goes this soon once empty. */
export const ORPHAN_ROOM_TTL_MS = 10 * 60_000
/** Matches reportSchema's neighbours cap (256) so a clique's neighbour list always validates. */
export const MAX_PEERS_PER_ROOM = 256
export const MAX_SPECTATORS_PER_ROOM = 512
/** Oldest runs are dropped beyond this (their history only; the run counter keeps counting). */
export const MAX_RUNS_PER_ROOM = 100
/**
 * Largest accepted model checkpoint: the largest model any room can have (shared/model-shapes.ts),
 * so socket.io's buffer (server.ts) need not be larger than a real checkpoint.
 */
export const CHECKPOINT_MAX_BYTES = Math.max(
  ...MODELS.flatMap((m) => DATASETS.map((d) => modelLayout(m, d))).map((l) => (l.ok ? l.paramCount * 4 : 0)),
)
/**
 * Checkpoints kept for a host's rollback besides the current one, and how far apart in time:
 * a writer uploads every ~20 s, so the kept ones reach back a few minutes, which a flood of
 * uploads cannot shorten (the ring only takes one per spacing).
 */
export const CHECKPOINTS_KEPT = 4
export const CHECKPOINT_KEEP_SPACING_MS = 60_000
/** Recent evictions kept per room for the dashboard and the API. */
export const MAX_EVICTIONS_KEPT = 50
/**
 * An evicted peer may rejoin (a slow laptop deserves another chance) but only after a cooldown
 * that doubles with each eviction, so a peer that keeps sending poison cannot thrash the swarm's
 * membership every second. The count is forgotten after EVICTION_MEMORY_MS without an eviction.
 */
export const EVICTION_COOLDOWN_BASE_MS = 3_000
export const EVICTION_COOLDOWN_MAX_MS = 120_000
export const EVICTION_MEMORY_MS = 10 * 60_000
/**
 * A checkpoint may be at most this far ahead of the furthest step the roster has reported:
 * the uploader reports every 500 ms (client/session/swarm-session.ts REPORT_INTERVAL_MS), so its
 * checkpoint can be a fraction of a second of steps ahead of its own last report. Fixed steps
 * plus seconds at the fastest reported rate; anything beyond is a made-up step number that
 * would make every later (honest) checkpoint look older and be ignored.
 */
export const CHECKPOINT_STEP_SLACK_STEPS = 1_000
export const CHECKPOINT_STEP_SLACK_S = 5

/**
 * Volunteers credited per room and run (the ledger, see credit()). Beyond it the smallest
 * contribution of a volunteer no longer in the room is forgotten (its samples stay in the run's
 * total), so a stream of one-off ids costs the server at most this many entries per room.
 */
export const MAX_LEDGER_ENTRIES = 1024
/** Entries of the room view's leaderboard. */
export const LEADERBOARD_SIZE = 20

export type { EvictionRecord }

/** What a volunteer has contributed to the current run, kept across its reloads and absences. */
export interface CreditEntry {
  readonly id: string
  name: string | null
  samples: number
  /** Last credited (ms): the eviction order among equal contributions. */
  at: number
}

/** A volunteer's place in its run (the 'credit' event). */
export interface Standing {
  samples: number
  /** 1-based place by samples; 0 while it has no credit. */
  rank: number
  /** Volunteers with credit in this run. */
  of: number
  /** samples / total of the run (0 when the run has none). */
  share: number
  total: number
  /** The neighbours its latest report names, with their display names (the tab shows people, not ids). */
  neighbours: Array<{ id: string; name: string | null }>
}

export type PeerRole = 'volunteer' | 'spectator'
export type Agent = 'browser' | 'node'

export interface PeerEntry {
  readonly id: string
  readonly role: PeerRole
  readonly name: string | null
  readonly agent: Agent
  readonly joinedAt: number
  report: PeerReport | null
  lastReportAt: number | null
  lastBytesSent: number
  /** When it last entered the roster (its tenure, for roles); null while pending. */
  readyAt: number | null
  /**
   * Neighbours that reported this peer as suspect → when (the latest report). Only the
   * suspect's topology neighbours are recorded; entries expire after SUSPICION_TTL_MS.
   */
  readonly suspectedBy: Map<string, number>
  /**
   * Volunteers join *pending* and enter the roster (and so the topology) only once they say
   * they are ready (data downloaded, model built): a tab still loading must not make its future
   * neighbours wait out deadlines and report it. Spectators are always ready.
   */
  ready: boolean
  /** Set while a volunteer has stepped out of the roster (user pause, hidden tab); see away(). */
  away: AwayReason | null
  /**
   * This connection's last reported counters and when: the ledger credits their growth (see
   * credit()). A reload is a new entry starting at zero, as the reloaded tab's counters do.
   */
  counters: { samples: number; step: number; at: number }
}

export interface Checkpoint {
  run: number
  step: number
  schemaHash: string
  params: Uint8Array
  savedAt: number
  /** The peer that uploaded it; null when restored from disk. */
  by?: string | null
  /** Its L2 norm (the next checkpoint's reference); computed on load when absent. */
  norm?: number
}

export interface Roles {
  ps: string | null
  writer: string | null
}

export interface Room {
  readonly name: string
  readonly code: string
  readonly createdAt: number
  /** Last join, leave or host action: what expiry counts from (only empty rooms expire). */
  lastActiveAt: number
  config: RoomConfig
  /** SHA-256 (hex) of the host token; null for rooms created by a volunteer's join. */
  tokenHash: string | null
  run: number
  paused: boolean
  epoch: number
  /** Ready volunteer ids in the order they became ready: topologies are computed from this order. */
  roster: string[]
  /** Volunteers and spectators. */
  peers: Map<string, PeerEntry>
  /** Who is the parameter server and the checkpoint writer (trust.ts chooseRole). */
  roles: Roles
  /** Roles the host pinned to a peer (applied while that peer is in the roster). */
  pinned: Roles
  runs: RunRecord[]
  /** The checkpoint resumes and downloads use. */
  checkpoint: Checkpoint | null
  /** Earlier checkpoints of the current run for rollback, oldest first, at most CHECKPOINTS_KEPT (memory only). */
  olderCheckpoints: Checkpoint[]
  /** Reporters whose suspicions did not hold up (trust.ts addStrike); bounded by the roster's churn and pruned. */
  strikes: Map<string, Strikes>
  /** Newest last; at most MAX_EVICTIONS_KEPT (saved with RoomSafety, so a restart keeps them). */
  evictions: EvictionRecord[]
  /** Peer id → eviction count and the time before which a join is refused. */
  cooldowns: Map<string, { count: number; until: number; lastAt: number }>
  /** The current run's credit by volunteer id, at most MAX_LEDGER_ENTRIES (saved with RoomSafety at most every SAFETY_SAVE_MIN_INTERVAL_MS). */
  ledger: Map<string, CreditEntry>
  /** Samples credited in the current run, including forgotten ledger entries. */
  ledgerTotal: number
}

/** The durable part of a room (what persistence.ts stores and loads). */
export interface RoomMeta {
  name: string
  code: string
  createdAt: number
  config: RoomConfig
  tokenHash: string | null
  run: number
  paused: boolean
  epoch: number
}

export interface PersistedRoom extends RoomMeta {
  runs: Array<{ run: number; config: RoomConfig; started: number; points: HistoryPoint[]; diverged?: RunRecord['diverged'] }>
  checkpoint: Checkpoint | null
  /** Absent from stores written before it existed: the room then starts with a clean slate. */
  safety?: RoomSafety | null
}

/**
 * What keeps a room safe and fair across a restart or a move to another server process: who
 * sits out a cooldown, the eviction record, muted reporters, the host's pins and the run's
 * credit. Without it, killing or restarting a process would let an evicted peer straight back
 * in and wipe every volunteer's credit.
 */
export const roomSafetySchema = z.object({
  cooldowns: z.array(z.tuple([z.string().max(128), z.object({ count: z.number().int().min(0).max(1e6), until: z.number(), lastAt: z.number() })])).max(4 * MAX_PEERS_PER_ROOM),
  evictions: z.array(evictionRecordSchema).max(MAX_EVICTIONS_KEPT),
  strikes: z.array(z.tuple([z.string().max(128), z.object({ count: z.number().int().min(0).max(1e6), lastAt: z.number(), mutedUntil: z.number() })])).max(4 * MAX_PEERS_PER_ROOM),
  pinned: z.object({ ps: z.string().max(128).nullable(), writer: z.string().max(128).nullable() }),
  ledger: z.array(z.object({ id: z.string().max(128), name: z.string().max(128).nullable(), samples: z.number().min(0), at: z.number() })).max(MAX_LEDGER_ENTRIES),
  ledgerTotal: z.number().min(0),
})
export type RoomSafety = z.infer<typeof roomSafetySchema>

/** A room's RoomSafety now. */
export function safetyOf(room: Room): RoomSafety {
  return {
    cooldowns: [...room.cooldowns].map(([id, c]) => [id, { ...c }]),
    evictions: room.evictions.map((e) => ({ ...e })),
    strikes: [...room.strikes].map(([id, st]) => [id, { ...st }]),
    pinned: { ...room.pinned },
    ledger: [...room.ledger.values()].map((e) => ({ ...e })),
    ledgerTotal: room.ledgerTotal,
  }
}

/** A stored RoomSafety, or null when it does not parse (a bad row never costs the room). */
export function parseSafety(raw: unknown): RoomSafety | null {
  const r = roomSafetySchema.safeParse(raw)
  return r.success ? r.data : null
}

/** Credit changes reach the store at most this often per room (a crash loses at most this much credit). */
export const SAFETY_SAVE_MIN_INTERVAL_MS = 5_000

/** Collaborator that makes rooms durable; every method is best effort (errors go to onStoreError). */
export interface RoomStore {
  saveRoom(meta: RoomMeta): void
  saveRun(room: string, run: { run: number; config: RoomConfig; started: number; diverged?: RunRecord['diverged'] }): void
  appendPoint(room: string, run: number, p: HistoryPoint): void
  saveCheckpoint(room: string, cp: Checkpoint): void
  deleteCheckpoint(room: string): void
  /** Removes the room with its runs, points and checkpoint. */
  deleteRoom(room: string): void
  /** Replaces the room's RoomSafety. */
  saveSafety(room: string, safety: RoomSafety): void
}

export interface RegistryOptions {
  now?: () => number
  /** Uniform integer in [0, maxExclusive); injectable so tests get predictable codes. */
  randomInt?: (maxExclusive: number) => number
  store?: RoomStore
  onStoreError?: (err: unknown) => void
}

export type Fail = { ok: false; code: string; message: string; retryAfterMs?: number }
export type JoinResult = { ok: true; room: Room; created: boolean; changed: boolean } | Fail

/** Algorithms whose room elects a parameter server: the only ones whose membership names a `ps`. */
const PS_ALGORITHMS = new Set<RoomConfig['algorithm']>(algorithmsWhere((d) => d.roles.ps))

function fail(code: string, message: string): Fail {
  return { ok: false, code, message }
}

export class RoomRegistry {
  private readonly rooms = new Map<string, Room>()
  private readonly byCode = new Map<string, Room>()
  private readonly roomOfPeer = new Map<string, Room>()
  private readonly now: () => number
  private readonly randomInt: (n: number) => number
  private readonly store: RoomStore | undefined
  private readonly onStoreError: (err: unknown) => void

  constructor(opts: RegistryOptions = {}) {
    this.now = opts.now ?? Date.now
    this.randomInt = opts.randomInt ?? ((n) => Math.floor(Math.random() * n))
    this.store = opts.store
    this.onStoreError = opts.onStoreError ?? (() => {})
  }

  // ---- lookup ----

  /** By exact name first, then by join code (case and separators ignored). */
  get(nameOrCode: string): Room | undefined {
    const byName = this.rooms.get(nameOrCode)
    if (byName) return byName
    const code = normalizeJoinCode(nameOrCode)
    return code ? this.byCode.get(code) : undefined
  }

  list(): Room[] {
    return [...this.rooms.values()]
  }

  roomOf(peerId: string): Room | undefined {
    return this.roomOfPeer.get(peerId)
  }

  // ---- rooms ----

  /**
   * Creates a room; its name defaults to its join code. `paused`: the room waits for the host's
   * Start (students join and download their data first; nobody trains until the class is in).
   */
  create(opts: { name?: string; code?: string; config: RoomConfig; tokenHash: string | null; paused?: boolean }): { ok: true; room: Room } | Fail {
    if (this.rooms.size >= MAX_ROOMS) return fail('room-limit', `the server already holds ${MAX_ROOMS} rooms`)
    const code = opts.code !== undefined && normalizeJoinCode(opts.code) === opts.code && !this.byCode.has(opts.code) ? opts.code : this.freshCode()
    const name = opts.name ?? code
    if (this.get(name)) return fail('exists', `room: '${name}' already exists`)
    const now = this.now()
    const room: Room = {
      name, code, createdAt: now, lastActiveAt: now, config: opts.config, tokenHash: opts.tokenHash,
      run: 1, paused: opts.paused ?? false, epoch: 0, roster: [], peers: new Map(), ...noRoles(),
      runs: [makeRun(1, opts.config, now)], checkpoint: null, olderCheckpoints: [], evictions: [], cooldowns: new Map(), strikes: new Map(),
      ledger: new Map(), ledgerTotal: 0,
    }
    this.rooms.set(name, room)
    this.byCode.set(code, room)
    this.persistRoom(room)
    this.persist((s) => s.saveRun(room.name, { run: 1, config: room.config, started: now }))
    return { ok: true, room }
  }

  /** Loads rooms saved by a previous process; rosters start empty (peers rejoin). */
  restore(saved: readonly PersistedRoom[]): void {
    for (const s of saved) {
      if (this.rooms.has(s.name) || this.byCode.has(s.code)) continue
      const runs: RunRecord[] = s.runs.map((r) => {
        const rec = makeRun(r.run, r.config, r.started)
        for (const p of r.points) appendPoint(rec, p)
        const last = r.points[r.points.length - 1]
        rec.bytes = last?.bytes ?? 0
        rec.diverged = r.diverged ?? null
        return rec
      })
      if (!runs.some((r) => r.run === s.run)) runs.push(makeRun(s.run, s.config, this.now()))
      const safety = s.safety ?? null
      const room: Room = {
        name: s.name, code: s.code, createdAt: s.createdAt, config: s.config, tokenHash: s.tokenHash,
        // A restart counts as activity: expiry starts over rather than deleting on boot.
        lastActiveAt: this.now(),
        run: s.run, paused: s.paused,
        // The roster is empty now, which is a membership change: peers compare epochs across the restart.
        epoch: s.epoch + 1,
        roster: [], peers: new Map(), ...noRoles(), runs,
        checkpoint: s.checkpoint && s.checkpoint.run === s.run ? { ...s.checkpoint, by: null } : null,
        olderCheckpoints: [],
        evictions: safety ? safety.evictions.slice(-MAX_EVICTIONS_KEPT) : [],
        cooldowns: new Map(safety?.cooldowns ?? []),
        strikes: new Map(safety?.strikes ?? []),
        ledger: new Map((safety?.ledger ?? []).map((e) => [e.id, { ...e }])),
        ledgerTotal: safety?.ledgerTotal ?? 0,
      }
      if (safety) room.pinned = { ...safety.pinned }
      this.rooms.set(room.name, room)
      this.byCode.set(room.code, room)
    }
  }

  /**
   * Deletes rooms nobody is in and nothing happened in for `ttlMs` (volunteer-created ones after
   * ORPHAN_ROOM_TTL_MS at most), with their history and checkpoint. Returns the names deleted.
   */
  expire(ttlMs = ROOM_IDLE_TTL_MS): string[] {
    const now = this.now()
    const gone: string[] = []
    for (const room of this.rooms.values()) {
      if (room.peers.size > 0) continue
      const ttl = room.tokenHash === null ? Math.min(ttlMs, ORPHAN_ROOM_TTL_MS) : ttlMs
      if (now - room.lastActiveAt < ttl) continue
      this.remove(room)
      gone.push(room.name)
    }
    return gone
  }

  /** A host acted on the room: it counts as activity for expiry. */
  touch(room: Room): void {
    room.lastActiveAt = this.now()
  }

  /** Deletes a room now (host's delete, expiry). Its peers must have been disconnected first. */
  remove(room: Room): void {
    for (const id of room.peers.keys()) this.roomOfPeer.delete(id)
    room.peers.clear()
    this.rooms.delete(room.name)
    this.byCode.delete(room.code)
    this.persist((s) => s.deleteRoom(room.name))
  }

  /**
   * Forgets a room here without deleting it from the store: another server process owns it now
   * (ownership.ts). Its sockets must be sent away first or right after.
   */
  unload(room: Room): void {
    for (const id of room.peers.keys()) this.roomOfPeer.delete(id)
    this.rooms.delete(room.name)
    this.byCode.delete(room.code)
  }

  /** Writes the room's durable state and RoomSafety now (before another process takes it over). */
  persistState(room: Room): void {
    this.persistRoom(room)
    this.persistSafety(room)
  }

  /** A join code no room here uses (for a room created under a name chosen before it exists). */
  newCode(): string {
    return this.freshCode()
  }

  // ---- membership ----

  /**
   * Adds a peer to a room, creating the room with the default config (DPSGD ring, MNIST MLP)
   * when no room has this name or code. `changed` is false for a repeated identical join.
   */
  join(
    nameOrCode: string, peer: { id: string; role: PeerRole; name?: string; agent?: Agent },
    opts: { mayCreate?: () => boolean } = {},
  ): JoinResult {
    const existing = this.roomOfPeer.get(peer.id)
    let room = this.get(nameOrCode)
    if (existing) {
      const entry = existing.peers.get(peer.id)
      if (existing === room && entry?.role === peer.role) return { ok: true, room, created: false, changed: false }
      return fail('already-joined', `already in room '${existing.name}': leave first`)
    }
    let created = false
    if (!room) {
      // Creating is what a flood of new names costs the server: the caller's budget decides.
      if (opts.mayCreate && !opts.mayCreate()) return fail('rate-limited', 'too many new rooms from this address; join an existing room or try later')
      const r = this.create({ name: nameOrCode, config: defaultConfig(), tokenHash: null })
      if (!r.ok) return r
      room = r.room
      created = true
    }
    const isVolunteer = peer.role === 'volunteer'
    const volunteers = [...room.peers.values()].filter((p) => p.role === 'volunteer').length
    const cooldown = isVolunteer ? room.cooldowns.get(peer.id) : undefined
    if (cooldown && cooldown.until > this.now()) {
      const retryAfterMs = cooldown.until - this.now()
      return {
        ...fail('cooldown', `this peer was evicted by its neighbours ${cooldown.count}× recently; join again in ${Math.ceil(retryAfterMs / 1000)} s`),
        retryAfterMs,
      }
    }
    if (isVolunteer && volunteers >= MAX_PEERS_PER_ROOM)
      return fail('room-full', `room '${room.name}' already has ${MAX_PEERS_PER_ROOM} volunteers`)
    if (!isVolunteer && room.peers.size - volunteers >= MAX_SPECTATORS_PER_ROOM)
      return fail('room-full', `room '${room.name}' already has ${MAX_SPECTATORS_PER_ROOM} spectators`)
    room.lastActiveAt = this.now()
    // A volunteer that gave no name (a Node peer without --name) gets the same friendly default a
    // tab derives from its stable id, so dashboards and neighbours never show a bare id.
    const name = normalizeName(peer.name) ?? (isVolunteer ? friendlyName(peer.id) : null)
    room.peers.set(peer.id, {
      id: peer.id, role: peer.role, name, agent: peer.agent ?? 'browser', joinedAt: this.now(),
      report: null, lastReportAt: null, lastBytesSent: 0, readyAt: null, suspectedBy: new Map(), ready: !isVolunteer, away: null,
      counters: { samples: 0, step: 0, at: this.now() },
    })
    // A returning volunteer (reload, rejoin) keeps its credit, under the name it uses now.
    const credit = room.ledger.get(peer.id)
    if (credit) credit.name = name
    this.roomOfPeer.set(peer.id, room)
    // A volunteer waits outside the roster until ready(): the membership does not change yet.
    return { ok: true, room, created, changed: false }
  }

  /**
   * A pending volunteer is ready to train: it enters the roster (the membership changes).
   * Repeated calls are no-ops; spectators and unknown peers get an error.
   */
  ready(peerId: string): { ok: true; room: Room; changed: boolean } | Fail {
    const room = this.roomOfPeer.get(peerId)
    const entry = room?.peers.get(peerId)
    if (!room || !entry || entry.role !== 'volunteer') return fail('not-joined', 'join a room as a volunteer first')
    entry.away = null
    if (entry.ready) return { ok: true, room, changed: false }
    entry.ready = true
    entry.readyAt = this.now()
    room.roster.push(peerId)
    this.membershipChanged(room)
    return { ok: true, room, changed: true }
  }

  /**
   * A roster member steps out for a while (its user paused it, or its tab is hidden): out of the
   * roster at once, so its neighbours stop waiting for it, but still joined — no eviction, no
   * cooldown — and back in with ready() like a pending joiner. Repeats, or an away from a peer
   * that is pending anyway, change nothing but the reason shown on the dashboard.
   */
  away(peerId: string, reason: AwayReason): { ok: true; room: Room; changed: boolean } | Fail {
    const room = this.roomOfPeer.get(peerId)
    const entry = room?.peers.get(peerId)
    if (!room || !entry || entry.role !== 'volunteer') return fail('not-joined', 'join a room as a volunteer first')
    entry.away = reason
    if (!entry.ready) return { ok: true, room, changed: false }
    entry.ready = false
    entry.readyAt = null
    room.roster = room.roster.filter((id) => id !== peerId)
    // Neither side of a suspicion survives the absence: it is not a reporter while away, and
    // comes back with a clean record (it left in good order, it did not miss deadlines).
    for (const p of room.peers.values()) p.suspectedBy.delete(peerId)
    entry.suspectedBy.clear()
    this.membershipChanged(room)
    return { ok: true, room, changed: true }
  }

  /** Removes a peer from its room. `changed` is true when the roster (and so the epoch) changed. */
  leave(peerId: string): { room: Room; changed: boolean } | null {
    const room = this.roomOfPeer.get(peerId)
    if (!room) return null
    const entry = room.peers.get(peerId)
    room.peers.delete(peerId)
    this.roomOfPeer.delete(peerId)
    room.lastActiveAt = this.now()
    if (entry?.role !== 'volunteer' || !entry.ready) return { room, changed: false }
    room.roster = room.roster.filter((id) => id !== peerId)
    // A departed reporter no longer counts towards anyone's suspicion.
    for (const p of room.peers.values()) p.suspectedBy.delete(peerId)
    this.membershipChanged(room)
    return { room, changed: true }
  }

  /**
   * Records that `reporter` missed deadlines from (or rejected frames of) `suspect`, and evicts
   * the suspect when the evidence suffices (trust.ts evictionBasis): a majority, and at least
   * two, of its own topology neighbours; or fewer together with the server's own observation
   * that it went silent. Reports from anyone else — pending peers, non-neighbours, reporters
   * muted because their earlier reports did not hold up — are refused and change nothing.
   */
  suspect(reporterId: string, suspectId: string, reason = ''): { ok: true; removed: boolean; room: Room; eviction?: EvictionRecord } | Fail {
    const room = this.roomOfPeer.get(reporterId)
    if (!room || room.peers.get(reporterId)?.role !== 'volunteer') return fail('not-joined', 'join a room as a volunteer first')
    if (reporterId === suspectId) return fail('bad-request', 'peer: cannot report yourself')
    const target = room.peers.get(suspectId)
    if (!target || target.role !== 'volunteer' || !target.ready) return fail('unknown-peer', `peer: '${suspectId}' is not in the roster of room '${room.name}'`)
    if (!room.roster.includes(reporterId)) return fail('not-in-roster', 'suspect: only peers in the roster report their neighbours')
    const now = this.now()
    this.reviewSuspicions(room, now)
    const strikes = room.strikes.get(reporterId)
    if (strikes && strikes.mutedUntil > now)
      return fail('no-vote', `suspect: ${strikes.count} recent reports from this peer did not hold up; its reports count again in ${Math.ceil((strikes.mutedUntil - now) / 1000)} s`)
    const neighbours = evidencePeers(room.config, room.roster, room.roles.ps, suspectId)
    if (!neighbours.includes(reporterId))
      return fail('not-neighbour', `peer: '${suspectId}' is not a neighbour of this peer in room '${room.name}'; only its neighbours' reports count`)
    target.suspectedBy.set(reporterId, now)
    const votes = neighbours.filter((id) => target.suspectedBy.has(id)).length
    const silentFor = now - (target.lastReportAt ?? target.readyAt ?? target.joinedAt)
    const basis = evictionBasis(neighbours.length, votes, silentFor)
    if (!basis) return { ok: true, removed: false, room }
    const reporterIds = neighbours.filter((id) => target.suspectedBy.has(id))
    const evidence = basis === 'neighbours'
      ? `${votes} of its ${neighbours.length} neighbours reported it`
      : `${votes} of its ${neighbours.length} neighbour${neighbours.length === 1 ? '' : 's'} reported it and the server had no report from it for ${Math.round(silentFor / 1000)} s`
    const eviction = this.evict(room, suspectId, { reason, reporters: reporterIds, basis, evidence })
    return { ok: true, removed: true, room, eviction }
  }

  /**
   * Removes a roster peer on evidence (see suspect()), records it for the dashboard, and makes
   * it sit out a cooldown that doubles with each eviction within EVICTION_MEMORY_MS.
   */
  evict(room: Room, peerId: string, why: Pick<EvictionRecord, 'reason' | 'reporters' | 'basis' | 'evidence'>): EvictionRecord {
    const now = this.now()
    const name = room.peers.get(peerId)?.name ?? null
    this.leave(peerId)
    const prev = room.cooldowns.get(peerId)
    const count = prev && now - prev.lastAt < EVICTION_MEMORY_MS ? prev.count + 1 : 1
    const cooldownMs = Math.min(EVICTION_COOLDOWN_MAX_MS, EVICTION_COOLDOWN_BASE_MS * 2 ** (count - 1))
    room.cooldowns.set(peerId, { count, until: now + cooldownMs, lastAt: now })
    // Bounded: entries older than the memory window can no longer affect anything.
    for (const [id, c] of room.cooldowns) if (now - c.lastAt >= EVICTION_MEMORY_MS) room.cooldowns.delete(id)
    const eviction: EvictionRecord = { peer: peerId, name, at: now, cooldownMs, ...why }
    room.evictions.push(eviction)
    if (room.evictions.length > MAX_EVICTIONS_KEPT) room.evictions.splice(0, room.evictions.length - MAX_EVICTIONS_KEPT)
    this.persistSafety(room)
    return eviction
  }

  /**
   * Expires suspicions older than SUSPICION_TTL_MS. One whose target kept reporting after it
   * was accused did not hold up: its reporter earns a strike (trust.ts addStrike), and enough
   * strikes mute it. Runs on every suspect() of the room, so its cost follows the reports.
   */
  private reviewSuspicions(room: Room, now: number): void {
    for (const id of room.roster) {
      const p = room.peers.get(id)
      if (!p) continue
      for (const [reporter, at] of p.suspectedBy) {
        if (now - at < SUSPICION_TTL_MS) continue
        p.suspectedBy.delete(reporter)
        if ((p.lastReportAt ?? 0) > at && now - (p.lastReportAt ?? 0) < SILENT_AFTER_MS)
          room.strikes.set(reporter, addStrike(room.strikes.get(reporter), now))
      }
    }
    for (const [id, st] of room.strikes) if (st.mutedUntil <= now && now - st.lastAt >= EVICTION_MEMORY_MS) room.strikes.delete(id)
  }

  // ---- reports, history, checkpoints ----

  /**
   * Stores a volunteer's report and samples the run history; returns null when not a volunteer.
   * `diverged` is true when this report made the run diverged (see markDiverged): the room
   * paused itself and the caller announces it.
   */
  report(peerId: string, report: PeerReport): { room: Room; sample: HistoryPoint | null; diverged: boolean } | null {
    const room = this.roomOfPeer.get(peerId)
    const entry = room?.peers.get(peerId)
    if (!room || !entry || entry.role !== 'volunteer') return null
    const now = this.now()
    const run = this.currentRun(room)
    report = sanitizeReport(report, room, peerId, run.started, now)
    // Counters restart with a peer's training; a drop means "this many since the restart". A
    // delta is bounded by what a link can carry since the peer's last report, so a peer that
    // alternates 0 and 1e15 cannot inflate the run's byte count.
    const raw = report.bytesSent >= entry.lastBytesSent ? report.bytesSent - entry.lastBytesSent : report.bytesSent
    const since = Math.max(1, (now - (entry.lastReportAt ?? entry.joinedAt)) / 1000)
    run.bytes += Math.min(raw, MAX_BYTES_PER_SEC * since)
    entry.lastBytesSent = report.bytesSent
    this.credit(room, entry, report, now)
    if (now - (this.safetySavedAt.get(room) ?? -Infinity) >= SAFETY_SAVE_MIN_INTERVAL_MS) this.persistSafety(room)
    entry.report = report
    entry.lastReportAt = now
    const reports = room.roster.map((id) => room.peers.get(id)?.report).filter((r): r is PeerReport => !!r)
    const sample = maybeSample(run, now, reports)
    if (sample) this.persist((s) => s.appendPoint(room.name, run.run, sample))
    const diverged = report.stage === 'diverged' && !!report.diverged && this.markDiverged(room, peerId)
    return { room, sample, diverged }
  }

  /**
   * A run diverges when at least half of the roster (and at least one peer) reports stage
   * 'diverged': one peer whose own model blew up is left to its neighbours (it stops stepping,
   * they time out, it rejoins from their models), but a swarm-wide blow-up — what a too-large
   * learning rate does, since averaging spreads it — pauses the room instead of letting every
   * peer end in an error. The mark goes into the run's history; the host's new run clears it.
   */
  private markDiverged(room: Room, peerId: string): boolean {
    const run = this.currentRun(room)
    if (run.diverged || !room.roster.includes(peerId)) return false
    const reports = room.roster.map((id) => room.peers.get(id)?.report).filter((r): r is PeerReport => !!r)
    const diverged = reports.filter((r) => r.stage === 'diverged' && r.diverged)
    if (diverged.length === 0 || diverged.length * 2 < room.roster.length) return false
    const first = diverged.reduce((a, b) => (b.diverged!.step < a.diverged!.step ? b : a)).diverged!
    run.diverged = { step: first.step, at: this.now(), loss: first.loss, reason: first.reason }
    room.paused = true
    this.persistRoom(room)
    this.persist((s) => s.saveRun(room.name, { run: run.run, config: run.config, started: run.started, diverged: run.diverged }))
    return true
  }

  /**
   * Keeps a volunteer's model as the room checkpoint (resume after a restart, model download).
   * The bytes come from one browser tab, so they are checked before anything changes: only the
   * room's writer (roles.writer, a peer with tenure: trust.ts chooseRole), exactly the room
   * model's float32 count and schema hash, finite values, a plausible norm next to the previous
   * checkpoint (trust.ts implausibleParams), and a step no further ahead of the roster's median
   * reported progress than CHECKPOINT_STEP_SLACK_*. The one it replaces is kept for rollback.
   */
  setCheckpoint(peerId: string, cp: { step: number; schemaHash: string; params: Uint8Array }): { ok: true; room: Room; accepted: boolean } | Fail {
    const room = this.roomOfPeer.get(peerId)
    if (!room || room.peers.get(peerId)?.role !== 'volunteer') return fail('not-joined', 'join a room as a volunteer first')
    if (!room.roster.includes(peerId)) return fail('not-in-roster', 'checkpoint: only peers in the roster upload checkpoints')
    if (room.roles.writer !== peerId)
      return fail('not-expected', `checkpoint: room '${room.name}' takes checkpoints from its writer (${room.roles.writer}), not from ${peerId}`)
    if (cp.params.byteLength > CHECKPOINT_MAX_BYTES)
      return fail('too-large', `params: checkpoint is ${cp.params.byteLength} bytes, the limit is ${CHECKPOINT_MAX_BYTES}`)
    const layout = modelLayout(room.config.model, room.config.dataset)
    if (!layout.ok) return fail('bad-request', layout.error)
    const { model, dataset } = room.config
    if (cp.params.byteLength !== layout.paramCount * 4)
      return fail('bad-length', `params: ${cp.params.byteLength} bytes, but ${model} on ${dataset} has ${layout.paramCount} float32 (${layout.paramCount * 4} bytes)`)
    if (cp.schemaHash !== layout.schemaHash)
      return fail('bad-schema', `schemaHash: '${cp.schemaHash}' is not this room's model (${layout.schemaHash})`)
    // The median, not the furthest: one peer claiming a huge step cannot stretch the bound.
    const reports = room.roster.map((id) => room.peers.get(id)?.report).filter((r): r is PeerReport => !!r)
    const progress = median(reports.map((r) => Math.max(r.globalStep, r.step))) ?? 0
    const rate = median(reports.map((r) => r.stepsPerSec)) ?? 0
    const maxStep = Math.floor(progress) + CHECKPOINT_STEP_SLACK_STEPS + Math.ceil(CHECKPOINT_STEP_SLACK_S * rate)
    if (cp.step > maxStep)
      return fail('bad-step', `step: ${cp.step} is ahead of the roster's reported progress (median step ${Math.floor(progress)}; at most ${maxStep} accepted)`)
    // Copy: socket.io hands us a view that may share a larger receive buffer (and may be unaligned).
    const params = new Uint8Array(cp.params)
    const values = new Float32Array(params.buffer, 0, layout.paramCount)
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) return fail('non-finite', `params: value ${i} is ${values[i]}; a checkpoint must be finite`)
    }
    const cur = room.checkpoint && room.checkpoint.run === room.run ? room.checkpoint : null
    const norm = l2Norm(values)
    const implausible = implausibleParams(norm, values.length, cur ? checkpointNorm(cur) : null)
    if (implausible) return fail('implausible', implausible)
    const saved: Checkpoint = { run: room.run, step: cp.step, schemaHash: cp.schemaHash, params, savedAt: this.now(), by: peerId, norm }
    if (cur) {
      // One kept per spacing: the newest kept stays until the current is that much newer.
      const newestKept = room.olderCheckpoints[room.olderCheckpoints.length - 1]
      if (!newestKept || cur.savedAt - newestKept.savedAt >= CHECKPOINT_KEEP_SPACING_MS) room.olderCheckpoints.push(cur)
      if (room.olderCheckpoints.length > CHECKPOINTS_KEPT) room.olderCheckpoints.splice(0, room.olderCheckpoints.length - CHECKPOINTS_KEPT)
    }
    room.checkpoint = saved
    this.persist((s) => s.saveCheckpoint(room.name, saved))
    return { ok: true, room, accepted: true }
  }

  /**
   * Host rollback: the kept checkpoint saved at `savedAt` (default: the newest kept one) becomes
   * the current one and everything newer is dropped. The caller tells every volunteer to reload it.
   */
  rollback(room: Room, savedAt?: number): { ok: true; checkpoint: Checkpoint } | Fail {
    const kept = room.olderCheckpoints
    const i = savedAt === undefined ? kept.length - 1 : kept.findIndex((c) => c.savedAt === savedAt)
    if (i < 0) {
      const known = kept.map((c) => c.savedAt).join(', ') || 'none'
      return fail('unknown-checkpoint', savedAt === undefined ? 'savedAt: no earlier checkpoint is kept in this run' : `savedAt: no kept checkpoint was saved at ${savedAt} (kept: ${known})`)
    }
    const target = kept[i]
    room.olderCheckpoints = kept.slice(0, i)
    room.checkpoint = target
    this.touch(room)
    this.persist((s) => s.saveCheckpoint(room.name, target))
    return { ok: true, checkpoint: target }
  }

  /** Host pin: `role` goes to `peer` (a roster volunteer) whatever its tenure; null unpins. */
  pin(room: Room, role: keyof Roles, peer: string | null): { ok: true } | Fail {
    if (peer !== null && !room.roster.includes(peer)) return fail('unknown-peer', `peer: '${peer}' is not in the roster of room '${room.name}'`)
    if (role === 'ps' && !PS_ALGORITHMS.has(room.config.algorithm))
      return fail('bad-request', `role: room '${room.name}' runs ${room.config.algorithm}, which has no parameter server`)
    room.pinned[role] = peer
    // Pinning takes the role now, unpinning hands it back to the rules.
    if (peer === null && room.roles[role] !== null) room.roles[role] = null
    this.touch(room)
    this.membershipChanged(room)
    return { ok: true }
  }

  // ---- host controls ----

  setPaused(room: Room, paused: boolean): void {
    room.paused = paused
    this.persistRoom(room)
  }

  /**
   * Starts run `room.run + 1` with `config` (default: the current one, i.e. a reset). Old runs'
   * history is kept for comparison; reports and the checkpoint belong to the old run and go.
   */
  startNewRun(room: Room, config: RoomConfig = room.config): void {
    const now = this.now()
    room.run += 1
    room.config = config
    room.paused = false
    room.runs.push(makeRun(room.run, config, now))
    if (room.runs.length > MAX_RUNS_PER_ROOM) room.runs.splice(0, room.runs.length - MAX_RUNS_PER_ROOM)
    for (const p of room.peers.values()) { p.report = null; p.lastReportAt = null; p.suspectedBy.clear() }
    // Everyone reloads for the new run (another dataset or model may mean a new download): the
    // volunteers are pending again and re-enter the roster as each becomes ready, so a fast
    // laptop never waits out deadlines on a slow one that is still loading.
    room.roster = []
    for (const p of room.peers.values()) if (p.role === 'volunteer') { p.ready = false; p.readyAt = null }
    room.olderCheckpoints = []
    // Credit is per run. Each connection's counters stay: a late report of the old run then adds
    // nothing, and the new run's first report (counters restarted) counts from zero.
    room.ledger.clear()
    room.ledgerTotal = 0
    if (room.checkpoint) { room.checkpoint = null; this.persist((s) => s.deleteCheckpoint(room.name)) }
    this.persist((s) => s.saveRun(room.name, { run: room.run, config, started: now }))
    // Roles depend on the algorithm, and stale-epoch filtering must drop the old run's messages.
    this.membershipChanged(room)
  }

  /** Host "remove peer": same as leaving, for a peer of this room only. */
  kick(room: Room, peerId: string): boolean {
    if (this.roomOfPeer.get(peerId) !== room) return false
    this.leave(peerId)
    return true
  }

  // ---- credit ----

  /**
   * Credits a volunteer's report to the run's ledger, keyed by its id (stable across reloads
   * when it proved an identity key). What counts is the growth of its sample counter since its
   * last report (a drop means the tab restarted the run: stepping back in after an absence, a
   * reload, a new run), never more than the steps it reported meanwhile times the samples one
   * step can take in this room (samplesPerStepCap), and never more steps than the fastest
   * believable rate (MAX_STEPS_PER_SEC) allows since that report: a claimed jump is cut to what
   * the peer could have done. Being away credits nothing and takes nothing.
   */
  private credit(room: Room, entry: PeerEntry, report: PeerReport, now: number): void {
    const c = entry.counters
    const grown = (v: number, last: number) => (v >= last ? v - last : v)
    const seconds = Math.max(0, now - c.at) / 1000
    const steps = Math.min(grown(report.step, c.step), Math.ceil(seconds * MAX_STEPS_PER_SEC))
    const samples = Math.min(grown(report.samples, c.samples), steps * samplesPerStepCap(room.config))
    entry.counters = { samples: report.samples, step: report.step, at: now }
    if (!(samples > 0)) return
    let e = room.ledger.get(entry.id)
    if (!e) {
      e = { id: entry.id, name: entry.name, samples: 0, at: now }
      room.ledger.set(entry.id, e)
      this.boundLedger(room)
    }
    e.samples += samples
    e.at = now
    room.ledgerTotal += samples
  }

  /** Forgets the smallest (then oldest) contributions of volunteers not in the room beyond MAX_LEDGER_ENTRIES. */
  private boundLedger(room: Room): void {
    while (room.ledger.size > MAX_LEDGER_ENTRIES) {
      let victim: CreditEntry | null = null
      for (const e of room.ledger.values()) {
        if (room.peers.has(e.id)) continue
        if (!victim || e.samples < victim.samples || (e.samples === victim.samples && e.at < victim.at)) victim = e
      }
      // Only present peers left (at most MAX_PEERS_PER_ROOM + spectators < the cap): nothing to drop.
      if (!victim) return
      room.ledger.delete(victim.id)
    }
  }

  /** Samples a volunteer has contributed to the current run (0 when none). */
  creditOf(room: Room, id: string): number {
    return room.ledger.get(id)?.samples ?? 0
  }

  /** The run's top contributors, largest first (ties: earliest credited first). */
  leaderboard(room: Room, size = LEADERBOARD_SIZE): LeaderboardEntry[] {
    const total = room.ledgerTotal
    return [...room.ledger.values()]
      .sort(byContribution)
      .slice(0, size)
      .map((e) => ({ id: e.id, name: e.name, samples: e.samples, share: total > 0 ? e.samples / total : 0 }))
  }

  /** Where a volunteer stands in the current run. */
  standing(room: Room, id: string): Standing {
    const total = room.ledgerTotal
    const own = room.ledger.get(id)
    const samples = own?.samples ?? 0
    let ahead = 0
    if (own) for (const e of room.ledger.values()) if (e !== own && byContribution(e, own) < 0) ahead++
    const neighbours = (room.peers.get(id)?.report?.neighbors ?? []).map((n) => ({ id: n, name: room.peers.get(n)?.name ?? null }))
    return { samples, rank: own ? ahead + 1 : 0, of: room.ledger.size, share: total > 0 ? Math.min(1, samples / total) : 0, total, neighbours }
  }

  // ---- views ----

  currentRun(room: Room): RunRecord {
    let run = room.runs.find((r) => r.run === room.run)
    if (!run) { run = makeRun(room.run, room.config, this.now()); room.runs.push(run) }
    return run
  }

  membership(room: Room): MembershipAnnouncement {
    return {
      v: PROTOCOL_VERSION, room: room.name, epoch: room.epoch, peers: [...room.roster],
      roles: { ...room.roles }, config: room.config, run: room.run, paused: room.paused,
      diverged: this.currentRun(room).diverged,
    }
  }

  /** The JSON of GET /api/rooms/:room and of spectators' 'room-state'. */
  view(room: Room): RoomView {
    return {
      room: room.name,
      code: room.code,
      config: publicConfig(room.config),
      run: room.run,
      paused: room.paused,
      epoch: room.epoch,
      roles: { ...room.roles, pinned: { ...room.pinned } },
      checkpointStep: room.checkpoint?.step ?? null,
      checkpoints: [...room.olderCheckpoints, ...(room.checkpoint ? [room.checkpoint] : [])].map((c) => ({
        run: c.run, step: c.step, savedAt: c.savedAt, by: c.by ?? null, current: c === room.checkpoint,
      })),
      /** The current run diverged (the room paused itself there): step, when, loss and why. */
      diverged: this.currentRun(room).diverged,
      spectators: [...room.peers.values()].filter((p) => p.role === 'spectator').length,
      /** Volunteers outside the roster: still loading, or stepped out for a while (`away`). */
      joining: [...room.peers.values()].filter((p) => p.role === 'volunteer' && !p.ready)
        .map((p) => ({ id: p.id, name: p.name, agent: p.agent, joinedAt: p.joinedAt, stage: p.away ? 'paused' : p.report?.stage ?? 'loading', away: p.away })),
      createdAt: room.createdAt,
      now: this.now(),
      peers: room.roster.map((id) => peerView(room.peers.get(id)!, this.creditOf(room, id))),
      evictions: room.evictions.slice(-10),
      leaderboard: this.leaderboard(room),
    }
  }

  summary(room: Room) {
    return {
      room: room.name, code: room.code, algorithm: room.config.algorithm, topology: room.config.topology,
      dataset: room.config.dataset, model: room.config.model, peers: room.roster.length,
      spectators: [...room.peers.values()].filter((p) => p.role === 'spectator').length, run: room.run, paused: room.paused,
    }
  }

  // ---- internals ----

  private membershipChanged(room: Room): void {
    room.epoch += 1
    const now = this.now()
    const candidates: RoleCandidate[] = room.roster.map((id) => {
      const p = room.peers.get(id)
      const st = room.strikes.get(id)
      return {
        id, readyAt: p?.readyAt ?? now, steps: p?.report?.step ?? 0,
        distrusted: (p?.suspectedBy.size ?? 0) > 0 || (!!st && st.mutedUntil > now),
      }
    })
    room.roles = {
      ps: PS_ALGORITHMS.has(room.config.algorithm) ? chooseRole(room.roles.ps, room.pinned.ps, candidates, now) : null,
      writer: chooseRole(room.roles.writer, room.pinned.writer, candidates, now),
    }
    this.persistRoom(room)
    this.persistSafety(room)
  }

  private readonly safetySavedAt = new WeakMap<Room, number>()

  private persistSafety(room: Room): void {
    this.safetySavedAt.set(room, this.now())
    const safety = safetyOf(room)
    this.persist((s) => s.saveSafety(room.name, safety))
  }

  private freshCode(): string {
    for (;;) {
      const code = makeJoinCode(this.randomInt)
      if (!this.byCode.has(code) && !this.rooms.has(code)) return code
    }
  }

  private persistRoom(room: Room): void {
    const meta: RoomMeta = {
      name: room.name, code: room.code, createdAt: room.createdAt, config: room.config,
      tokenHash: room.tokenHash, run: room.run, paused: room.paused, epoch: room.epoch,
    }
    this.persist((s) => s.saveRoom(meta))
  }

  private persist(fn: (s: RoomStore) => void): void {
    if (!this.store) return
    try {
      fn(this.store)
    } catch (err) {
      this.onStoreError(err)
    }
  }
}

export type { RoomView }

/** The fastest a peer's byte counter may grow (10 Gbit/s): beyond it a report is not believed. */
export const MAX_BYTES_PER_SEC = 1.25e9
/** The fastest a run's step counter may grow on any machine: a generous 1,000 steps per second. */
export const MAX_STEPS_PER_SEC = 1000

/**
 * What the server keeps of a peer's report: its neighbour list and links only to roster peers
 * (never more entries than the room has peers), and steps no further than the run could have
 * gone since it started (MAX_STEPS_PER_SEC plus the checkpoint slack). The schema already made
 * every number finite and bounded; this bounds them by what the server itself can check.
 */
export function sanitizeReport(r: PeerReport, room: Room, self: string, runStarted: number, now: number): PeerReport {
  const inRoster = (id: string) => id !== self && room.roster.includes(id)
  const links: PeerReport['links'] = {}
  for (const [id, l] of Object.entries(r.links)) if (inRoster(id)) links[id] = l
  const cap = CHECKPOINT_STEP_SLACK_STEPS + Math.ceil((Math.max(0, now - runStarted) / 1000) * MAX_STEPS_PER_SEC)
  return {
    ...r,
    neighbors: r.neighbors.filter(inRoster).slice(0, room.roster.length),
    links,
    step: Math.min(r.step, cap),
    globalStep: Math.min(r.globalStep, cap),
    loss: r.loss === null ? null : Math.min(r.loss, REPORT_LIMITS.loss),
    consensus: r.consensus === null ? null : Math.min(r.consensus, REPORT_LIMITS.consensus),
    lr: r.lr === null ? null : Math.min(r.lr, REPORT_LIMITS.lr),
  }
}

function noRoles(): Pick<Room, 'roles' | 'pinned'> {
  return { roles: { ps: null, writer: null }, pinned: { ps: null, writer: null } }
}

/** A checkpoint's L2 norm, computed once (restored checkpoints come without it). */
function checkpointNorm(cp: Checkpoint): number {
  if (cp.norm === undefined) {
    const aligned = new Uint8Array(cp.params)
    cp.norm = l2Norm(new Float32Array(aligned.buffer, 0, aligned.byteLength >> 2))
  }
  return cp.norm
}

/** Larger contribution first; among equals the one credited earliest. */
function byContribution(a: CreditEntry, b: CreditEntry): number {
  return b.samples - a.samples || a.at - b.at
}

/**
 * The most samples one reported step can carry in this room: a minibatch, and for Hogwild
 * algorithms (LAP-SGD) one averaging period's worth, H minibatches shared among the updaters.
 */
export function samplesPerStepCap(config: RoomConfig): number {
  if (!ALGORITHM_DESCRIPTORS[config.algorithm].hogwild) return config.batchSize
  const h = config.sync.kind === 'constant' ? config.sync.h : config.sync.hMax ?? config.totalSteps
  return config.batchSize * h
}

/** `samples`: the ledger's count for this volunteer (its credit across reloads), not this connection's. */
function peerView(p: PeerEntry, samples: number): PeerView {
  const r = p.report
  return {
    id: p.id,
    name: p.name,
    agent: p.agent,
    joinedAt: p.joinedAt,
    step: r?.step ?? 0,
    globalStep: r?.globalStep ?? 0,
    loss: r?.loss ?? null,
    accuracy: r?.accuracy ?? null,
    backend: r?.backend ?? null,
    backendReason: r?.backendReason ?? null,
    computeThread: r?.computeThread ?? null,
    samplesPerSec: r?.samplesPerSec ?? 0,
    stepsPerSec: r?.stepsPerSec ?? 0,
    samples,
    bytesSent: r?.bytesSent ?? 0,
    bytesReceived: r?.bytesReceived ?? 0,
    neighbors: r?.neighbors ?? [],
    links: r?.links ?? {},
    lr: r?.lr ?? null,
    h: r?.h ?? null,
    consensus: r?.consensus ?? null,
    stage: r?.stage ?? 'loading',
    updaters: r?.updaters ?? null,
    capability: r?.capability ?? [],
    rejected: r?.rejected ?? 0,
    slowFactor: r?.slowFactor ?? 1,
    addedLatencyMs: r?.addedLatencyMs ?? 0,
    ...(r?.link ? { link: r.link } : {}),
    lastReportAt: p.lastReportAt,
    suspect: p.suspectedBy.size > 0,
  }
}
