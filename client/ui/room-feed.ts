import { useEffect, useState } from 'react'
import { io, type Socket } from 'socket.io-client'
import {
  applyHistoryDelta, historyDeltaSchema, historyFromSnapshot, historySnapshotSchema, type HistoryFeedState,
} from '../../shared/protocol/history'
import { clientRoomSchema } from '../../shared/protocol/http'
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { getHistory, getRoom, type ApiHistory, type ApiRoom } from './api'

/**
 * A spectator page's view of one room, pushed by the server (issue 24 "Push, not poll"): one GET
 * of the room when the page opens (for the links, which depend on the Host header, and to learn
 * whether the room exists), then a socket.io spectator connection that receives 'room-state' on
 * every change and, with `history`, the run history once and its new points after. The HTTP
 * routes are polled only while the socket cannot connect (a proxy that drops WebSockets).
 */

/** Fallback polling periods, as the pages polled before the push (room 1 s, history 2 s). */
export const FALLBACK_ROOM_POLL_MS = 1000
export const FALLBACK_HISTORY_POLL_MS = 2000
/** A room that does not exist (yet) or a server that is down is asked again this often. */
export const MISSING_ROOM_RETRY_MS = 2000
/**
 * At most one history resync (a re-join, which answers with a snapshot) this often: a resync is
 * a snapshot of up to HISTORY_SNAPSHOT_MAX_POINTS points, and the server rate-limits joins.
 */
export const HISTORY_RESYNC_MIN_MS = 5000

/** The room view fields a GET adds to the socket's view (they depend on who asks). */
type Links = Pick<ApiRoom, 'joinUrl' | 'dashboardUrl' | 'projectorUrl' | 'publicUrl' | 'localOnly'>

export interface RoomFeed {
  data: ApiRoom | null
  history: ApiHistory | null
  error: string | null
  status: number | null
  /** 'push' while the socket delivers; 'poll' while it cannot connect. */
  mode: 'push' | 'poll' | 'connecting'
  /** Server clock minus this page's clock at the last room view (for "last seen" labels between pushes). */
  skewMs: number
}

const INITIAL: RoomFeed = { data: null, history: null, error: null, status: null, mode: 'connecting', skewMs: 0 }

export function useRoomFeed(room: string | null, opts: { history?: boolean } = {}): RoomFeed {
  const wantHistory = opts.history ?? false
  const [feed, setFeed] = useState<RoomFeed>(INITIAL)
  useEffect(() => {
    if (!room) return
    setFeed(INITIAL)
    const c = new FeedConnection(room, wantHistory, (patch) => setFeed((f) => ({ ...f, ...patch(f) })))
    c.start()
    return () => c.stop()
  }, [room, wantHistory])
  return feed
}

type Patch = (f: RoomFeed) => Partial<RoomFeed>

/** The connection's life outside React: load once, then socket; polling timers only as a fallback. */
class FeedConnection {
  private stopped = false
  private readonly ac = new AbortController()
  private socket: Socket<ServerToClientEvents, ClientToServerEvents> | null = null
  private links: Links = {}
  private roomName: string
  private history: HistoryFeedState | null = null
  private lastResync = 0
  private timers = new Set<ReturnType<typeof setTimeout>>()
  private polling = false

  constructor(room: string, private readonly wantHistory: boolean, private readonly set: (p: Patch) => void) {
    this.roomName = room
  }

  start() {
    void this.load()
  }

  stop() {
    this.stopped = true
    this.ac.abort()
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.socket?.disconnect()
    this.socket = null
  }

  private later(ms: number, fn: () => void) {
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (!this.stopped) fn()
    }, ms)
    this.timers.add(t)
  }

  private setRoom(r: ApiRoom) {
    const skewMs = typeof r.now === 'number' ? r.now - Date.now() : 0
    this.set(() => ({ data: { ...r, ...this.links }, error: null, status: 200, skewMs }))
  }

  private setHistory(h: HistoryFeedState) {
    this.history = h
    this.set(() => ({ history: { room: h.room, runs: h.runs } }))
  }

  private fail(e: unknown) {
    const status = (e as { status?: number }).status ?? null
    // A room that is gone (deleted by its host, expired) shows "not found", not its last state.
    this.set(() => ({ error: e instanceof Error ? e.message : String(e), status, ...(status === 404 ? { data: null, history: null } : {}) }))
  }

  /** The one GET: links and existence. A missing room or a down server is asked again later. */
  private async load() {
    try {
      const r = await getRoom(this.roomName, this.ac.signal)
      if (this.stopped) return
      this.links = { joinUrl: r.joinUrl, dashboardUrl: r.dashboardUrl, projectorUrl: r.projectorUrl, publicUrl: r.publicUrl, localOnly: r.localOnly }
      this.roomName = r.room
      this.setRoom(r)
      this.connect()
    } catch (e) {
      if (this.stopped) return
      this.fail(e)
      this.later(MISSING_ROOM_RETRY_MS, () => void this.load())
    }
  }

  private connect() {
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io({ reconnection: true, query: { room: this.roomName } })
    this.socket = socket
    socket.on('connect', () => {
      this.polling = false
      this.set(() => ({ mode: 'push' }))
      this.join()
    })
    // The socket cannot reach the server (or a proxy refuses WebSockets and long-polling):
    // keep the page live over HTTP until it can. socket.io keeps retrying meanwhile.
    socket.on('connect_error', () => this.startPolling())
    socket.on('disconnect', (reason) => {
      if (this.stopped) return
      // The server closed it (the room was deleted, or this page was sent away): ask again what
      // exists, which shows "not found" for a deleted room. Other reasons reconnect by themselves.
      if (reason === 'io server disconnect') {
        socket.removeAllListeners()
        this.socket = null
        void this.load()
      }
    })
    socket.on('room-state', (raw: unknown) => {
      const r = clientRoomSchema.safeParse(raw)
      if (r.success) this.setRoom(r.data)
    })
    socket.on('history', (raw: unknown) => {
      const r = historySnapshotSchema.safeParse(raw)
      if (r.success) this.setHistory(historyFromSnapshot(r.data))
    })
    socket.on('history-delta', (raw: unknown) => {
      const r = historyDeltaSchema.safeParse(raw)
      if (!r.success) return
      // No base (the server refused a snapshot this soon): ask again, within the resync bound.
      if (!this.history) return this.resync()
      const next = applyHistoryDelta(this.history, r.data)
      if (next) this.setHistory(next)
      else this.resync()
    })
  }

  private join() {
    this.socket?.emit('join', { v: PROTOCOL_VERSION, room: this.roomName, role: 'spectator', history: this.wantHistory }, (ack: unknown) => {
      const a = ack as { ok?: boolean; message?: string; code?: string } | null
      if (a && a.ok === false) this.set(() => ({ error: a.message ?? a.code ?? 'join refused' }))
    })
  }

  /** The feed skipped ahead of what this page holds: join again, which answers with a snapshot. */
  private resync() {
    const now = Date.now()
    if (now - this.lastResync < HISTORY_RESYNC_MIN_MS) return
    this.lastResync = now
    this.join()
  }

  private startPolling() {
    if (this.polling || this.stopped) return
    this.polling = true
    this.set(() => ({ mode: 'poll' }))
    const pollRoom = async () => {
      if (!this.polling) return
      try {
        const r = await getRoom(this.roomName, this.ac.signal)
        if (this.polling) this.setRoom(r)
      } catch (e) {
        if (this.polling) this.fail(e)
      }
      if (this.polling) this.later(FALLBACK_ROOM_POLL_MS, () => void pollRoom())
    }
    const pollHistory = async () => {
      if (!this.polling) return
      try {
        const h = await getHistory(this.roomName, this.ac.signal)
        if (this.polling) this.setHistory({ room: h.room, runs: h.runs.map((r) => ({ ...r, count: r.points.length })), omittedRuns: 0 })
      } catch {
        // the room poll reports the error
      }
      if (this.polling) this.later(FALLBACK_HISTORY_POLL_MS, () => void pollHistory())
    }
    void pollRoom()
    if (this.wantHistory) void pollHistory()
  }
}
