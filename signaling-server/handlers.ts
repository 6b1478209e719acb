import type { Server, Socket } from 'socket.io'
import type { z } from 'zod'
import { publicConfig } from '../shared/config'
import { newChallenge, verifyIdentity } from '../shared/identity'
import { KeyedBuckets, TokenBucket } from '../shared/rate-limit'
import {
  awaySchema, checkpointSchema, iceServersRequestSchema, joinSchema, readySchema, reportSchema, signalSchema, suspectSchema, syncSchema,
  type ClientToServerEvents, type MembershipAnnouncement, type MembershipDelta, type PeerCommand, type ServerToClientEvents,
} from '../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../shared/protocol/version'
import { CHECKPOINT_MAX_BYTES, type Room, type RoomRegistry } from './rooms'
import { feedCursorAtEnd, historySnapshot, nextHistoryDelta, type FeedCursor } from './history'
import { LocalOwnership, type RoomOwnership } from './ownership'
import { iceGrant, NO_ICE_SETTINGS, renewDelayMs, type IceSettings } from './turn'

/**
 * The socket binding: socket.on(event) → schema.safeParse → registry → emit. Every handler is
 * wrapped so nothing a client sends can throw out of it; a malformed payload gets an 'error'
 * event naming the field and changes nothing. The sender is always the socket's own peer id:
 * the socket's id, or the id of the key pair it proved at join (shared/identity.ts).
 */

export interface SocketData {
  room: string | null
  /** Who this socket speaks for: its socket id until a join proves an identity key. */
  peerId: string
  /** This connection's identity challenge (sent in 'hello'). */
  challenge: string
}
export type SignalingServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>
type SignalingSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>

/**
 * Spectators' pages re-render on 'room-state': once a second, as often as they polled the room
 * before the push (docs/benchmarks.md "Spectator cost"); twice a second doubled the bytes of the
 * largest message a spectator gets for no visible gain.
 */
export const ROOM_STATE_MIN_INTERVAL_MS = 1000
/**
 * 'history-delta' at most this often per room: the history is sampled at most once a second
 * (history.ts HISTORY_SAMPLE_INTERVAL_MS), so a faster push would only split the same points.
 */
export const HISTORY_PUSH_MIN_INTERVAL_MS = 1000
/**
 * One 'history' snapshot per socket this often at most: a snapshot is up to ~2.6 MB
 * (HISTORY_SNAPSHOT_MAX_POINTS), so a socket re-joining at the join rate must not turn into a
 * stream of them. Pages resync at most every 5 s (client/ui/room-feed.ts HISTORY_RESYNC_MIN_MS).
 */
export const HISTORY_SNAPSHOT_MIN_INTERVAL_MS = 4000

/**
 * Bytes a socket may send, counted per engine packet before anything is parsed: before it has
 * joined, only what a join needs; a spectator sends almost nothing; a volunteer a checkpoint of
 * the largest model every two seconds at most, plus signals and reports. [burst, per second].
 * Beyond its budget a socket is disconnected (a flood costs the server one counter per packet).
 */
export const SOCKET_BYTE_BUDGETS = {
  unjoined: [64 * 1024, 8 * 1024],
  spectator: [64 * 1024, 16 * 1024],
  volunteer: [2 * CHECKPOINT_MAX_BYTES + 1024 * 1024, CHECKPOINT_MAX_BYTES / 2 + 256 * 1024],
} as const satisfies Record<string, readonly [number, number]>
/** Every socket of one address together (a classroom behind one NAT is ~30 volunteers). [burst, per second] */
export const ADDRESS_BYTE_BUDGET = [64 * 1024 * 1024, 16 * 1024 * 1024] as const
/** Concurrent sockets per client address (MAX_SOCKETS_PER_ADDRESS in the environment overrides). */
export const MAX_SOCKETS_PER_ADDRESS = 512

/** What the HTTP control API needs from the socket layer. */
export interface RoomBus {
  broadcastMembership(room: Room): void
  pushRoomState(room: Room): void
  /** New history points (or a new run) for the room's history subscribers, throttled. */
  pushHistory(room: Room): void
  command(peerId: string, cmd: PeerCommand): boolean
  /** Tells a peer why it was removed, takes it out of the room's channels and optionally disconnects it. */
  evict(peerId: string, code: string, message: string, disconnect: boolean): void
  /** Whether `address` may create one more room now (its budget is spent otherwise). */
  mayCreateRoom(address: string): boolean
  close(): void
}

/** Sockets that get every membership change as a whole 'membership' (older clients, scripts). */
const roomChannel = (room: string) => `room:${room}`
/** Sockets that joined with `deltas: true`: 'membership-delta' from the last broadcast. */
const deltaChannel = (room: string) => `room-deltas:${room}`
/**
 * Membership changes within this window go out as one announcement: a burst of joins, or an
 * away/ready flap, costs one message per socket instead of one per change.
 */
export const MEMBERSHIP_BATCH_MS = 50
const spectatorChannel = (room: string) => `spectators:${room}`
/** Spectators that joined with `history: true`: the 'history' snapshot, then 'history-delta'. */
const historyChannel = (room: string) => `history:${room}`
const CHANNELS = [roomChannel, deltaChannel, spectatorChannel, historyChannel]

/** `field: message` from the first zod issue, so clients learn what to fix. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]
  const field = issue?.path.length ? issue.path.join('.') : 'payload'
  return `${field}: ${issue?.message ?? 'invalid'}`
}

/**
 * New rooms per client address (a join to an unknown name, POST /api/rooms): a burst a host or a
 * test suite never reaches, then one a minute, so one machine cannot fill the registry.
 */
export const ROOM_CREATION_BURST = 200
export const ROOM_CREATIONS_PER_SEC = 1 / 60

export function attachHandlers(
  io: SignalingServer, rooms: RoomRegistry, log: (msg: string) => void, ice: IceSettings = NO_ICE_SETTINGS,
  ownership: RoomOwnership = new LocalOwnership(rooms),
): RoomBus {
  const bus = new SocketBus(io, rooms, log, ice, ownership)
  io.on('connection', (socket) => bindSocket(bus, socket))
  ownership.onDrop((room) => bus.sendAway(room))
  return bus
}

/**
 * The key the balancer routed this socket by (its handshake's `room` query; deploy/haproxy.cfg),
 * or null for a socket that came without one (a direct connection, an older client).
 */
function routedAs(socket: SignalingSocket): string | null {
  const q = socket.handshake.query.room
  return typeof q === 'string' && q.length > 0 && q.length <= 128 ? q : null
}

type Ack = ((r: unknown) => void) | null

/**
 * The socket layer's shared state: the room channels, the throttled room-state pushes and the
 * registry. Every event handler works through it; the HTTP control API sees it as a RoomBus.
 */
class SocketBus implements RoomBus {
  private readonly stateTimers = new Map<string, { last: number; timer: NodeJS.Timeout | null }>()
  private readonly creations = new KeyedBuckets(ROOM_CREATION_BURST, ROOM_CREATIONS_PER_SEC)
  readonly addressBytes = new KeyedBuckets(ADDRESS_BYTE_BUDGET[0], ADDRESS_BYTE_BUDGET[1])
  /** Open sockets per client address. */
  readonly socketsPerAddress = new Map<string, number>()
  readonly maxSocketsPerAddress = Number(process.env.MAX_SOCKETS_PER_ADDRESS) > 0 ? Number(process.env.MAX_SOCKETS_PER_ADDRESS) : MAX_SOCKETS_PER_ADDRESS
  /** Peer id → the socket that speaks for it (one socket per identity: a newer one replaces the older). */
  private readonly byPeer = new Map<string, SignalingSocket>()

  mayCreateRoom(address: string): boolean {
    return this.creations.take(clientAddress(address), performance.now())
  }

  socketOf(peerId: string): SignalingSocket | undefined {
    return this.byPeer.get(peerId)
  }

  /** `socket` now speaks for `peerId`; another socket that did is sent away (a reload's stale connection). */
  claim(socket: SignalingSocket, peerId: string): void {
    const prev = this.byPeer.get(peerId)
    if (prev && prev !== socket) {
      this.leaveRoom(prev)
      this.emitError(prev, 'join', 'replaced', 'this identity joined again from another connection (a reload?); this one is closed')
      this.byPeer.delete(peerId)
      prev.disconnect(true)
    }
    if (this.byPeer.get(socket.data.peerId) === socket) this.byPeer.delete(socket.data.peerId)
    socket.data.peerId = peerId
    this.byPeer.set(peerId, socket)
  }

  release(socket: SignalingSocket): void {
    if (this.byPeer.get(socket.data.peerId) === socket) this.byPeer.delete(socket.data.peerId)
  }

  constructor(
    readonly io: SignalingServer, readonly rooms: RoomRegistry, readonly log: (msg: string) => void, readonly ice: IceSettings,
    readonly ownership: RoomOwnership,
  ) {}

  /**
   * The room moved to another server process (ownership.ts): its sockets here close their
   * transport, which a client reads as a dropped connection, so it reconnects through the
   * balancer and rejoins there under the same identity.
   */
  sendAway(roomName: string): void {
    for (const socket of this.io.sockets.sockets.values()) {
      if (socket.data.room !== roomName) continue
      socket.data.room = null
      this.forgetIce(socket)
      for (const ch of CHANNELS) void socket.leave(ch(roomName))
      socket.conn.close()
    }
  }

  /** Per volunteer socket: when its TURN credentials are renewed (one timer each, gone with the socket). */
  private readonly iceTimers = new Map<string, NodeJS.Timeout>()

  /**
   * Sends `socket` the server's ICE servers with fresh TURN credentials for its peer id (only
   * ever to its own socket: credentials never go to a room channel or a public response), and
   * schedules the next grant before these expire.
   */
  grantIce(socket: SignalingSocket): void {
    const grant = iceGrant(this.ice, socket.data.peerId, Date.now())
    if (!grant) return
    socket.emit('ice-servers', { v: PROTOCOL_VERSION, ...grant })
    const delay = renewDelayMs(this.ice)
    if (delay === null) return
    this.forgetIce(socket)
    const timer = setTimeout(() => {
      this.iceTimers.delete(socket.id)
      try {
        if (socket.connected && this.isVolunteer(socket)) this.grantIce(socket)
      } catch (err) {
        this.log(`ICE renewal failed for ${socket.data.peerId}: ${String(err)}`)
      }
    }, delay)
    timer.unref()
    this.iceTimers.set(socket.id, timer)
  }

  forgetIce(socket: SignalingSocket): void {
    clearTimeout(this.iceTimers.get(socket.id))
    this.iceTimers.delete(socket.id)
  }

  isVolunteer(socket: SignalingSocket): boolean {
    return this.rooms.roomOf(socket.data.peerId)?.peers.get(socket.data.peerId)?.role === 'volunteer'
  }

  emitError(socket: SignalingSocket, event: string, code: string, message: string) {
    return socket.emit('error', { v: PROTOCOL_VERSION, event, code, message })
  }

  private readonly membershipTimers = new Map<Room, NodeJS.Timeout>()
  /** What the delta channel last heard per room (deltas are computed from it). */
  private readonly lastSent = new WeakMap<Room, MembershipAnnouncement>()

  /** Announces the room's membership after MEMBERSHIP_BATCH_MS, with whatever else changed by then. */
  broadcastMembership(room: Room) {
    if (this.membershipTimers.has(room)) return
    this.membershipTimers.set(room, setTimeout(() => {
      this.membershipTimers.delete(room)
      try {
        this.flushMembership(room)
      } catch (err) {
        this.log(`membership broadcast failed for '${room.name}': ${String(err)}`)
      }
    }, MEMBERSHIP_BATCH_MS))
  }

  /**
   * The membership a volunteer joining the delta channel starts from: while an announcement is
   * pending, what the channel last heard, so the pending delta (based on it) applies to the
   * newcomer too. With the current one instead, a newcomer that joined and said ready within the
   * batch window could not apply that delta and would have to ask for a whole membership.
   */
  deltaBase(room: Room): MembershipAnnouncement | undefined {
    const last = this.lastSent.get(room)
    return this.membershipTimers.has(room) && last && last.run === room.run ? last : undefined
  }

  private flushMembership(room: Room) {
    if (this.rooms.get(room.name) !== room) return // deleted meanwhile
    const m = this.rooms.membership(room)
    this.io.to(roomChannel(room.name)).emit('membership', m)
    const delta = membershipDelta(this.lastSent.get(room), m)
    if (delta) this.io.to(deltaChannel(room.name)).emit('membership-delta', delta)
    else this.io.to(deltaChannel(room.name)).emit('membership', m)
    this.lastSent.set(room, m)
    this.pushRoomState(room)
  }

  pushRoomState(room: Room) {
    const { io, rooms } = this
    const channel = spectatorChannel(room.name)
    if ((io.sockets.adapter.rooms.get(channel)?.size ?? 0) === 0) return
    let s = this.stateTimers.get(room.name)
    if (!s) { s = { last: 0, timer: null }; this.stateTimers.set(room.name, s) }
    if (s.timer) return
    const state = s
    const send = () => {
      state.timer = null
      state.last = Date.now()
      const current = rooms.get(room.name)
      if (current) io.to(channel).emit('room-state', rooms.view(current))
    }
    const wait = ROOM_STATE_MIN_INTERVAL_MS - (Date.now() - state.last)
    if (wait <= 0) send()
    else state.timer = setTimeout(send, wait)
  }

  private readonly historyTimers = new Map<string, { last: number; timer: NodeJS.Timeout | null }>()
  /** How far each room's history channel has been told (the next delta starts there). */
  private readonly feedCursors = new WeakMap<Room, FeedCursor | null>()

  private readonly lastSnapshot = new WeakMap<SignalingSocket, number>()

  /** Subscribes a spectator to the history feed: the snapshot now, deltas from the channel's cursor on. */
  subscribeHistory(socket: SignalingSocket, room: Room) {
    const channel = historyChannel(room.name)
    // Nobody was listening: the cursor is stale, start it at the end of what exists.
    if ((this.io.sockets.adapter.rooms.get(channel)?.size ?? 0) === 0) this.feedCursors.set(room, feedCursorAtEnd(room.runs))
    void socket.join(channel)
    const now = Date.now()
    if (now - (this.lastSnapshot.get(socket) ?? -Infinity) < HISTORY_SNAPSHOT_MIN_INTERVAL_MS) {
      // Deltas still come; a page without a base asks again after HISTORY_RESYNC_MIN_MS.
      this.emitError(socket, 'join', 'rate-limited', `history: one snapshot per ${HISTORY_SNAPSHOT_MIN_INTERVAL_MS / 1000} s`)
      return
    }
    this.lastSnapshot.set(socket, now)
    socket.emit('history', historySnapshot(room.name, room.run, room.runs))
  }

  /** Same throttle as pushRoomState: a timer per room, at most one message per HISTORY_PUSH_MIN_INTERVAL_MS. */
  pushHistory(room: Room) {
    const channel = historyChannel(room.name)
    if ((this.io.sockets.adapter.rooms.get(channel)?.size ?? 0) === 0) return
    let s = this.historyTimers.get(room.name)
    if (!s) { s = { last: 0, timer: null }; this.historyTimers.set(room.name, s) }
    if (s.timer) return
    const state = s
    const send = () => {
      state.timer = null
      state.last = Date.now()
      try {
        this.flushHistory(room.name)
      } catch (err) {
        this.log(`history push failed for '${room.name}': ${String(err)}`)
      }
    }
    const wait = HISTORY_PUSH_MIN_INTERVAL_MS - (Date.now() - state.last)
    if (wait <= 0) send()
    else state.timer = setTimeout(send, wait)
  }

  private flushHistory(name: string) {
    const room = this.rooms.get(name)
    if (!room || room.name !== name) return
    const channel = historyChannel(name)
    const next = nextHistoryDelta(name, room.runs, this.feedCursors.get(room) ?? null)
    if (!next) return
    if (next === 'resync') {
      // The run was thinned (its points moved): one snapshot for everyone, then deltas again.
      this.feedCursors.set(room, feedCursorAtEnd(room.runs))
      this.io.to(channel).emit('history', historySnapshot(name, room.run, room.runs))
      return
    }
    this.feedCursors.set(room, next.cursor)
    this.io.to(channel).emit('history-delta', next.delta)
    if (next.pending) this.pushHistory(room)
  }

  leaveRoom(socket: SignalingSocket) {
    const left = this.rooms.leave(socket.data.peerId)
    socket.data.room = null
    if (!left) return
    for (const ch of CHANNELS) void socket.leave(ch(left.room.name))
    if (left.changed) this.broadcastMembership(left.room)
    else this.pushRoomState(left.room) // a spectator or a still-joining volunteer left: dashboards update
  }

  evict(peerId: string, code: string, message: string, disconnect: boolean) {
    const socket = this.byPeer.get(peerId)
    if (!socket) return
    const roomName = socket.data.room
    if (roomName && !this.rooms.roomOf(peerId)) {
      for (const ch of CHANNELS) void socket.leave(ch(roomName))
      socket.data.room = null
    }
    this.emitError(socket, 'membership', code, message)
    if (disconnect) socket.disconnect(true)
  }

  command(peerId: string, cmd: PeerCommand) {
    const socket = this.byPeer.get(peerId)
    if (!socket) return false
    socket.emit('command', cmd)
    return true
  }

  close() {
    for (const s of [...this.stateTimers.values(), ...this.historyTimers.values()]) if (s.timer) clearTimeout(s.timer)
    this.stateTimers.clear()
    this.historyTimers.clear()
    for (const t of this.membershipTimers.values()) clearTimeout(t)
    this.membershipTimers.clear()
    for (const t of this.iceTimers.values()) clearTimeout(t)
    this.iceTimers.clear()
  }
}

/** Registers a handler that validates with `schema` and never lets an exception escape. */
/**
 * Rate bounds per socket and event type: [burst, per second]. Far above what an honest tab sends
 * (a report every 500 ms, a checkpoint every 20 s, a 'ready' every 5 s while pending, ICE
 * candidates in a burst per link), far below a flood (docs/security.md).
 */
export const EVENT_RATE_LIMITS: Record<keyof ClientToServerEvents, [number, number]> = {
  join: [10, 2], ready: [20, 4], away: [20, 4], leave: [10, 2],
  signal: [400, 200], report: [40, 20], suspect: [20, 4], checkpoint: [8, 0.5], sync: [10, 2],
  // The server pushes fresh credentials itself; a request is for a client that lost them (or raced a renewal).
  'ice-servers': [3, 1 / 30],
}

function on<S extends z.ZodType>(
  bus: SocketBus, socket: SignalingSocket, event: keyof ClientToServerEvents, schema: S | null,
  fn: (payload: z.infer<S>, ack: Ack) => void,
) {
  const [burst, perSec] = EVENT_RATE_LIMITS[event]
  const bucket = new TokenBucket(burst, perSec, performance.now())
  socket.on(event, (payload: unknown, maybeAck?: unknown) => {
    const ack = typeof maybeAck === 'function' ? (maybeAck as (r: unknown) => void) : null
    if (!bucket.take(performance.now())) {
      const message = `${event}: more than ${perSec}/s; slow down`
      bus.emitError(socket, event, 'rate-limited', message)
      ack?.({ ok: false, code: 'rate-limited', message })
      return
    }
    try {
      let data = payload as z.infer<S>
      if (schema) {
        const r = schema.safeParse(payload)
        if (!r.success) {
          const message = describeIssue(r.error)
          bus.emitError(socket, event, 'bad-request', message)
          ack?.({ ok: false, code: 'bad-request', message })
          return
        }
        data = r.data
      }
      fn(data, ack)
    } catch (err) {
      bus.log(`handler '${event}' failed for ${socket.data.peerId}: ${err instanceof Error ? err.stack : String(err)}`)
      bus.emitError(socket, event, 'internal', 'the server could not handle this event')
      ack?.({ ok: false, code: 'internal', message: 'internal error' })
    }
  })
}

/**
 * The delta from what the delta channel last heard to `m`, or null when a delta cannot say it
 * (nothing sent yet, another run, or a roster whose surviving order changed): then a full one.
 */
export function membershipDelta(prev: MembershipAnnouncement | undefined, m: MembershipAnnouncement): MembershipDelta | null {
  if (!prev || prev.run !== m.run || prev.room !== m.room || JSON.stringify(prev.config) !== JSON.stringify(m.config)) return null
  const now = new Set(m.peers)
  const kept = prev.peers.filter((p) => now.has(p))
  if (kept.some((p, i) => m.peers[i] !== p)) return null
  const before = new Set(prev.peers)
  const added = m.peers.slice(kept.length)
  if (added.some((p) => before.has(p))) return null
  return {
    v: PROTOCOL_VERSION, room: m.room, epoch: m.epoch, base: prev.epoch, run: m.run,
    added, removed: prev.peers.filter((p) => !now.has(p)), roles: m.roles, paused: m.paused, diverged: m.diverged,
  }
}

/** The same client reaches the socket layer as '::ffff:127.0.0.1' and HTTP as '127.0.0.1'. */
export function clientAddress(address: string): string {
  return address.replace(/^::ffff:/, '')
}

/**
 * Byte budgets (SOCKET_BYTE_BUDGETS, ADDRESS_BYTE_BUDGET) and the per-address socket cap. Counted
 * on engine packets, before socket.io reassembles or parses anything, so an oversized or
 * never-finished binary event costs at most the budget before the socket is closed.
 */
function guardBytes(bus: SocketBus, socket: SignalingSocket): boolean {
  const address = clientAddress(socket.handshake.address)
  const open = (bus.socketsPerAddress.get(address) ?? 0) + 1
  if (open > bus.maxSocketsPerAddress) {
    bus.emitError(socket, 'connect', 'rate-limited', `more than ${bus.maxSocketsPerAddress} connections from this address`)
    socket.disconnect(true)
    return false
  }
  bus.socketsPerAddress.set(address, open)
  socket.on('disconnect', () => {
    const n = (bus.socketsPerAddress.get(address) ?? 1) - 1
    if (n <= 0) bus.socketsPerAddress.delete(address)
    else bus.socketsPerAddress.set(address, n)
  })
  const budgets = {
    unjoined: new TokenBucket(...SOCKET_BYTE_BUDGETS.unjoined, performance.now()),
    spectator: new TokenBucket(...SOCKET_BYTE_BUDGETS.spectator, performance.now()),
    volunteer: new TokenBucket(...SOCKET_BYTE_BUDGETS.volunteer, performance.now()),
  }
  socket.conn.on('packet', (packet: { type: string; data?: unknown }) => {
    if (!socket.connected) return
    const d = packet.data
    const size = typeof d === 'string' ? d.length : d instanceof ArrayBuffer || ArrayBuffer.isView(d) ? d.byteLength : 0
    if (size === 0) return
    const room = socket.data.room ? bus.rooms.roomOf(socket.data.peerId) : undefined
    const role = room?.peers.get(socket.data.peerId)?.role
    const kind = role === 'volunteer' ? 'volunteer' : role === 'spectator' ? 'spectator' : 'unjoined'
    const now = performance.now()
    if (budgets[kind].take(now, size) && bus.addressBytes.take(address, now, size)) return
    bus.log(`socket ${socket.data.peerId} (${address}) sent more than its ${kind} byte budget; disconnected`)
    bus.emitError(socket, 'connect', 'rate-limited', `more bytes than a ${kind === 'unjoined' ? 'socket that has not joined' : kind} may send; disconnected`)
    socket.disconnect(true)
  })
  return true
}

function bindSocket(bus: SocketBus, socket: SignalingSocket) {
  socket.data.room = null
  socket.data.peerId = socket.id
  socket.data.challenge = newChallenge()
  if (!guardBytes(bus, socket)) return
  bus.claim(socket, socket.id)
  socket.emit('hello', { v: PROTOCOL_VERSION, challenge: socket.data.challenge })
  on(bus, socket, 'join', joinSchema, (p, ack) => onJoin(bus, socket, p, ack))
  on(bus, socket, 'ready', readySchema, () => onReady(bus, socket))
  on(bus, socket, 'away', awaySchema, (p) => onAway(bus, socket, p))
  on(bus, socket, 'leave', null, () => bus.leaveRoom(socket))
  on(bus, socket, 'signal', signalSchema, (p) => onSignal(bus, socket, p))
  on(bus, socket, 'report', reportSchema, (p) => onReport(bus, socket, p))
  on(bus, socket, 'suspect', suspectSchema, (p) => onSuspect(bus, socket, p))
  on(bus, socket, 'checkpoint', checkpointSchema, (p) => onCheckpoint(bus, socket, p))
  on(bus, socket, 'sync', syncSchema, () => {
    const room = bus.rooms.roomOf(socket.data.peerId)
    if (!room) return bus.emitError(socket, 'sync', 'not-joined', 'join a room first')
    socket.emit('membership', membershipFor(bus, socket, room))
  })
  on(bus, socket, 'ice-servers', iceServersRequestSchema, () => {
    if (!bus.isVolunteer(socket)) return bus.emitError(socket, 'ice-servers', 'not-joined', 'join a room as a volunteer first')
    bus.grantIce(socket)
  })
  socket.on('disconnect', () => {
    try {
      bus.forgetIce(socket)
      bus.leaveRoom(socket)
      bus.release(socket)
    } catch (err) {
      bus.log(`disconnect cleanup failed for ${socket.data.peerId}: ${String(err)}`)
    }
  })
}

function onJoin(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof joinSchema>, ack: Ack) {
  if (!p.identity) return claimAndJoin(bus, socket, p, socket.id, ack)
  // Verifying is asynchronous (WebCrypto); the join rate limit bounds how often it runs.
  verifyIdentity(p.identity, socket.data.challenge, p.room).then((v) => {
    if (!socket.connected) return
    if (!v.ok) {
      bus.emitError(socket, 'join', 'bad-request', v.error)
      ack?.({ ok: false, code: 'bad-request', message: v.error })
      return
    }
    claimAndJoin(bus, socket, p, v.id, ack)
  }).catch((err: unknown) => {
    bus.log(`join verification failed for ${socket.id}: ${String(err)}`)
    ack?.({ ok: false, code: 'internal', message: 'internal error' })
  })
}

/**
 * The membership as this socket may see it: a volunteer gets the room's ICE credentials (it
 * needs them to connect); anyone else the public config (shared/config.ts publicConfig).
 */
function membershipFor(bus: SocketBus, socket: SignalingSocket, room: Room): MembershipAnnouncement {
  const m = bus.rooms.membership(room)
  return bus.isVolunteer(socket) ? m : { ...m, config: publicConfig(m.config) }
}

/**
 * Makes sure this process serves the room (ownership.ts; immediate with one process), then
 * joins. A room served under another name, or still moving, is refused with what to do.
 */
function claimAndJoin(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof joinSchema>, peerId: string, ack: Ack) {
  if (!bus.ownership.clustered) return join(bus, socket, p, peerId, ack)
  bus.ownership.claim(p.room, routedAs(socket), { create: true }).then((c) => {
    if (!socket.connected) return
    if (c.ok) return join(bus, socket, { ...p, room: c.name }, peerId, ack)
    const retry = c.code === 'busy' ? { retryAfterMs: c.retryAfterMs } : c.code === 'moved' ? { room: c.room } : {}
    if (ack) ack({ ok: false, code: c.code, message: c.message, ...retry })
    else bus.emitError(socket, 'join', c.code, c.message)
  }).catch((err: unknown) => {
    bus.log(`claiming room '${p.room}' failed: ${String(err)}`)
    const message = 'the server could not reach its room store; try again'
    if (ack) ack({ ok: false, code: 'busy', message, retryAfterMs: 2000 })
    else bus.emitError(socket, 'join', 'busy', message)
  })
}

/** Joins as `peerId` (the socket's id, or a proven key's). */
function join(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof joinSchema>, peerId: string, ack: Ack) {
  const { rooms } = bus
  const current = rooms.roomOf(socket.data.peerId)
  const target = rooms.get(p.room)
  // A join to another room, with another role or as another identity is a move: leave first.
  if (current && (current !== target || current.peers.get(socket.data.peerId)?.role !== p.role || peerId !== socket.data.peerId)) bus.leaveRoom(socket)
  if (peerId !== socket.data.peerId) bus.claim(socket, peerId)
  const r = rooms.join(p.room, { id: peerId, role: p.role, name: p.name, agent: p.agent }, {
    mayCreate: () => bus.mayCreateRoom(socket.handshake.address),
  })
  if (!r.ok) {
    bus.emitError(socket, 'join', r.code, r.message)
    ack?.({ ok: false, code: r.code, message: r.message, ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}) })
    return
  }
  const room = r.room
  socket.data.room = room.name
  // Membership carries the room's ICE credentials: volunteers only. Spectators follow 'room-state'.
  if (p.role === 'volunteer') void socket.join(p.deltas ? deltaChannel(room.name) : roomChannel(room.name))
  else void socket.join(spectatorChannel(room.name))
  const membership = membershipFor(bus, socket, room)
  // Before the ack, so a client has its ICE servers by the time its join resolves.
  if (p.role === 'volunteer') bus.grantIce(socket)
  else bus.forgetIce(socket)
  ack?.({ ok: true, self: peerId, membership, checkpointStep: room.checkpoint?.step ?? null })
  socket.emit('joined', { v: PROTOCOL_VERSION, self: peerId, room: room.name })
  if (r.changed) bus.broadcastMembership(room)
  else socket.emit('membership', p.role === 'volunteer' && p.deltas ? bus.deltaBase(room) ?? membership : membership)
  if (p.role === 'spectator') {
    socket.emit('room-state', rooms.view(room))
    if (p.history) bus.subscribeHistory(socket, room)
  } else {
    bus.pushRoomState(room) // the dashboard lists it as joining
    sendCredit(bus, socket, room, true) // a returning volunteer sees its credit at once
  }
}

function onReady(bus: SocketBus, socket: SignalingSocket) {
  const r = bus.rooms.ready(socket.data.peerId)
  if (!r.ok) return bus.emitError(socket, 'ready', r.code, r.message)
  if (r.changed) bus.broadcastMembership(r.room)
  else socket.emit('membership', bus.rooms.membership(r.room))
}

function onAway(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof awaySchema>) {
  const r = bus.rooms.away(socket.data.peerId, p.reason)
  if (!r.ok) return bus.emitError(socket, 'away', r.code, r.message)
  if (r.changed) bus.broadcastMembership(r.room)
  else bus.pushRoomState(r.room) // the dashboard shows the new reason
}

function onSignal(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof signalSchema>) {
  const self = socket.data.peerId
  const room = bus.rooms.roomOf(self)
  if (!room || room.peers.get(self)?.role !== 'volunteer') {
    bus.emitError(socket, 'signal', 'not-joined', 'join a room as a volunteer before signalling')
    return
  }
  // Relay only inside the room, and only to volunteers: nobody can reach arbitrary sockets.
  if (p.to === self || !room.roster.includes(p.to)) {
    bus.emitError(socket, 'signal', 'unknown-peer', `to: '${p.to}' is not a peer of room '${room.name}'`)
    return
  }
  bus.socketOf(p.to)?.emit('signal', { v: PROTOCOL_VERSION, from: self, data: p.data })
}

function onReport(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof reportSchema>) {
  const r = bus.rooms.report(socket.data.peerId, p)
  if (!r) return bus.emitError(socket, 'report', 'not-joined', 'join a room as a volunteer before reporting')
  if (r.diverged) {
    bus.log(`room '${r.room.name}': run ${r.room.run} diverged; paused until the host starts a new run`)
    bus.broadcastMembership(r.room)
  } else bus.pushRoomState(r.room)
  if (r.sample) bus.pushHistory(r.room)
  sendCredit(bus, socket, r.room, false)
}

/** A volunteer's own standing follows its reports (every 500 ms) at most this often. */
export const CREDIT_MIN_INTERVAL_MS = 2000
const creditSentAt = new WeakMap<SignalingSocket, number>()

/** Tells a volunteer its credit, rank and share in the run (creditSchema); throttled unless `force`. */
function sendCredit(bus: SocketBus, socket: SignalingSocket, room: Room, force: boolean) {
  const now = performance.now()
  if (!force && now - (creditSentAt.get(socket) ?? -Infinity) < CREDIT_MIN_INTERVAL_MS) return
  creditSentAt.set(socket, now)
  socket.emit('credit', { v: PROTOCOL_VERSION, ...bus.rooms.standing(room, socket.data.peerId) })
}

function onSuspect(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof suspectSchema>) {
  const r = bus.rooms.suspect(socket.data.peerId, p.peer, p.reason)
  if (!r.ok) return bus.emitError(socket, 'suspect', r.code, r.message)
  if (r.removed) {
    bus.log(`room '${r.room.name}': removed suspect ${p.peer} (last report: ${p.reason})`)
    const wait = Math.ceil((r.eviction?.cooldownMs ?? 0) / 1000)
    bus.evict(p.peer, 'evicted', `neighbours reported this peer (${p.reason}); join again in ${wait} s to continue`, false)
    bus.broadcastMembership(r.room)
  } else bus.pushRoomState(r.room)
}

function onCheckpoint(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof checkpointSchema>) {
  const params = p.params instanceof Uint8Array ? p.params : new Uint8Array(p.params)
  const r = bus.rooms.setCheckpoint(socket.data.peerId, { step: p.step, schemaHash: p.schemaHash, params })
  if (!r.ok) return bus.emitError(socket, 'checkpoint', r.code, r.message)
  if (r.accepted) bus.pushRoomState(r.room)
}
