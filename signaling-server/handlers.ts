import type { Server, Socket } from 'socket.io'
import type { z } from 'zod'
import { KeyedBuckets, TokenBucket } from '../shared/rate-limit'
import {
  awaySchema, checkpointSchema, joinSchema, readySchema, reportSchema, signalSchema, suspectSchema,
  type ClientToServerEvents, type PeerCommand, type ServerToClientEvents,
} from '../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../shared/protocol/version'
import type { Room, RoomRegistry } from './rooms'

/**
 * The socket binding: socket.on(event) → schema.safeParse → registry → emit. Every handler is
 * wrapped so nothing a client sends can throw out of it; a malformed payload gets an 'error'
 * event naming the field and changes nothing. The sender is always the socket's own id.
 */

export interface SocketData {
  room: string | null
}
export type SignalingServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>
type SignalingSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>

/** Spectators' dashboards re-render on 'room-state'; twice a second looks live and costs little. */
export const ROOM_STATE_MIN_INTERVAL_MS = 500

/** What the HTTP control API needs from the socket layer. */
export interface RoomBus {
  broadcastMembership(room: Room): void
  pushRoomState(room: Room): void
  command(peerId: string, cmd: PeerCommand): boolean
  /** Tells a peer why it was removed, takes it out of the room's channels and optionally disconnects it. */
  evict(peerId: string, code: string, message: string, disconnect: boolean): void
  /** Whether `address` may create one more room now (its budget is spent otherwise). */
  mayCreateRoom(address: string): boolean
  close(): void
}

const roomChannel = (room: string) => `room:${room}`
const spectatorChannel = (room: string) => `spectators:${room}`

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

export function attachHandlers(io: SignalingServer, rooms: RoomRegistry, log: (msg: string) => void): RoomBus {
  const bus = new SocketBus(io, rooms, log)
  io.on('connection', (socket) => bindSocket(bus, socket))
  return bus
}

type Ack = ((r: unknown) => void) | null

/**
 * The socket layer's shared state: the room channels, the throttled room-state pushes and the
 * registry. Every event handler works through it; the HTTP control API sees it as a RoomBus.
 */
class SocketBus implements RoomBus {
  private readonly stateTimers = new Map<string, { last: number; timer: NodeJS.Timeout | null }>()
  private readonly creations = new KeyedBuckets(ROOM_CREATION_BURST, ROOM_CREATIONS_PER_SEC)

  mayCreateRoom(address: string): boolean {
    // The same client reaches the socket layer as '::ffff:127.0.0.1' and HTTP as '127.0.0.1'.
    return this.creations.take(address.replace(/^::ffff:/, ''), performance.now())
  }

  constructor(readonly io: SignalingServer, readonly rooms: RoomRegistry, readonly log: (msg: string) => void) {}

  emitError(socket: SignalingSocket, event: string, code: string, message: string) {
    return socket.emit('error', { v: PROTOCOL_VERSION, event, code, message })
  }

  broadcastMembership(room: Room) {
    this.io.to(roomChannel(room.name)).emit('membership', this.rooms.membership(room))
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

  leaveRoom(socket: SignalingSocket) {
    const left = this.rooms.leave(socket.id)
    socket.data.room = null
    if (!left) return
    void socket.leave(roomChannel(left.room.name))
    void socket.leave(spectatorChannel(left.room.name))
    if (left.changed) this.broadcastMembership(left.room)
    else this.pushRoomState(left.room) // a spectator or a still-joining volunteer left: dashboards update
  }

  evict(peerId: string, code: string, message: string, disconnect: boolean) {
    const socket = this.io.sockets.sockets.get(peerId)
    if (!socket) return
    const roomName = socket.data.room
    if (roomName && !this.rooms.roomOf(peerId)) {
      void socket.leave(roomChannel(roomName))
      void socket.leave(spectatorChannel(roomName))
      socket.data.room = null
    }
    this.emitError(socket, 'membership', code, message)
    if (disconnect) socket.disconnect(true)
  }

  command(peerId: string, cmd: PeerCommand) {
    const socket = this.io.sockets.sockets.get(peerId)
    if (!socket) return false
    socket.emit('command', cmd)
    return true
  }

  close() {
    for (const s of this.stateTimers.values()) if (s.timer) clearTimeout(s.timer)
    this.stateTimers.clear()
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
  signal: [400, 200], report: [40, 20], suspect: [20, 4], checkpoint: [8, 0.5],
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
      bus.log(`handler '${event}' failed for ${socket.id}: ${err instanceof Error ? err.stack : String(err)}`)
      bus.emitError(socket, event, 'internal', 'the server could not handle this event')
      ack?.({ ok: false, code: 'internal', message: 'internal error' })
    }
  })
}

function bindSocket(bus: SocketBus, socket: SignalingSocket) {
  socket.data.room = null
  on(bus, socket, 'join', joinSchema, (p, ack) => onJoin(bus, socket, p, ack))
  on(bus, socket, 'ready', readySchema, () => onReady(bus, socket))
  on(bus, socket, 'away', awaySchema, (p) => onAway(bus, socket, p))
  on(bus, socket, 'leave', null, () => bus.leaveRoom(socket))
  on(bus, socket, 'signal', signalSchema, (p) => onSignal(bus, socket, p))
  on(bus, socket, 'report', reportSchema, (p) => onReport(bus, socket, p))
  on(bus, socket, 'suspect', suspectSchema, (p) => onSuspect(bus, socket, p))
  on(bus, socket, 'checkpoint', checkpointSchema, (p) => onCheckpoint(bus, socket, p))
  socket.on('disconnect', () => {
    try {
      bus.leaveRoom(socket)
    } catch (err) {
      bus.log(`disconnect cleanup failed for ${socket.id}: ${String(err)}`)
    }
  })
}

function onJoin(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof joinSchema>, ack: Ack) {
  const { rooms } = bus
  const current = rooms.roomOf(socket.id)
  const target = rooms.get(p.room)
  // A join to another room (or with another role) is a move: leave first.
  if (current && (current !== target || current.peers.get(socket.id)?.role !== p.role)) bus.leaveRoom(socket)
  const r = rooms.join(p.room, { id: socket.id, role: p.role, name: p.name, agent: p.agent }, {
    mayCreate: () => bus.mayCreateRoom(socket.handshake.address),
  })
  if (!r.ok) {
    bus.emitError(socket, 'join', r.code, r.message)
    ack?.({ ok: false, code: r.code, message: r.message, ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}) })
    return
  }
  const room = r.room
  socket.data.room = room.name
  void socket.join(roomChannel(room.name))
  if (p.role === 'spectator') void socket.join(spectatorChannel(room.name))
  const membership = rooms.membership(room)
  ack?.({ ok: true, self: socket.id, membership, checkpointStep: room.checkpoint?.step ?? null })
  socket.emit('joined', { v: PROTOCOL_VERSION, self: socket.id, room: room.name })
  if (r.changed) bus.broadcastMembership(room)
  else socket.emit('membership', membership)
  if (p.role === 'spectator') socket.emit('room-state', rooms.view(room))
  else bus.pushRoomState(room) // the dashboard lists it as joining
}

function onReady(bus: SocketBus, socket: SignalingSocket) {
  const r = bus.rooms.ready(socket.id)
  if (!r.ok) return bus.emitError(socket, 'ready', r.code, r.message)
  if (r.changed) bus.broadcastMembership(r.room)
  else socket.emit('membership', bus.rooms.membership(r.room))
}

function onAway(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof awaySchema>) {
  const r = bus.rooms.away(socket.id, p.reason)
  if (!r.ok) return bus.emitError(socket, 'away', r.code, r.message)
  if (r.changed) bus.broadcastMembership(r.room)
  else bus.pushRoomState(r.room) // the dashboard shows the new reason
}

function onSignal(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof signalSchema>) {
  const room = bus.rooms.roomOf(socket.id)
  if (!room || room.peers.get(socket.id)?.role !== 'volunteer') {
    bus.emitError(socket, 'signal', 'not-joined', 'join a room as a volunteer before signalling')
    return
  }
  // Relay only inside the room, and only to volunteers: nobody can reach arbitrary sockets.
  if (p.to === socket.id || !room.roster.includes(p.to)) {
    bus.emitError(socket, 'signal', 'unknown-peer', `to: '${p.to}' is not a peer of room '${room.name}'`)
    return
  }
  bus.io.to(p.to).emit('signal', { v: PROTOCOL_VERSION, from: socket.id, data: p.data })
}

function onReport(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof reportSchema>) {
  const r = bus.rooms.report(socket.id, p)
  if (!r) return bus.emitError(socket, 'report', 'not-joined', 'join a room as a volunteer before reporting')
  if (r.diverged) {
    bus.log(`room '${r.room.name}': run ${r.room.run} diverged; paused until the host starts a new run`)
    bus.broadcastMembership(r.room)
  } else bus.pushRoomState(r.room)
}

function onSuspect(bus: SocketBus, socket: SignalingSocket, p: z.infer<typeof suspectSchema>) {
  const r = bus.rooms.suspect(socket.id, p.peer, p.reason)
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
  const r = bus.rooms.setCheckpoint(socket.id, { step: p.step, schemaHash: p.schemaHash, params })
  if (!r.ok) return bus.emitError(socket, 'checkpoint', r.code, r.message)
  if (r.accepted) bus.pushRoomState(r.room)
}
