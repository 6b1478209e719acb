import type { RoomConfig } from '../../shared/config'
import { historyRunSchema, type EvictionRecord } from '../../shared/protocol/history'
import {
  clientCreatedRoomSchema, clientHistorySchema, clientRoomSchema, errorBodySchema,
  type ClientCreatedRoom, type ClientHistory, type ClientPeer, type ClientRoom, type ControlAction,
} from '../../shared/protocol/http'

/**
 * The HTTP API as the UI sees it, parsed with shared/protocol/http.ts. Responses
 * are checked loosely on purpose: the `client…` schemas there make what older servers did not
 * send optional, so the UI tolerates their missing fields instead of showing nothing.
 */

export type ApiPeer = ClientPeer
export type ApiLink = NonNullable<ApiPeer['links']>[string]
export type ApiRoom = ClientRoom
export type ApiHistory = ClientHistory
export type CreatedRoom = ClientCreatedRoom
export type { ControlAction, EvictionRecord }
export type { HistoryPoint, HistoryRun } from '../../shared/protocol/history'

/** An error with the server's own message, shown to the user as is. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

async function readError(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`
  try {
    const body: unknown = await res.json()
    const ours = errorBodySchema.safeParse(body)
    // `message`: what a proxy in front of the server may answer with instead of `{ error }`.
    const m = ours.success ? ours.data.error : (body as { message?: unknown } | null)?.message
    if (typeof m === 'string' && m) msg = m
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401 || res.status === 403) msg = `Not allowed (${res.status}): ${msg}. Is this the browser that created the room?`
  return new ApiError(res.status, msg)
}

export const roomPath = (room: string) => `/api/rooms/${encodeURIComponent(room)}`

export async function getRoom(room: string, signal?: AbortSignal): Promise<ApiRoom> {
  const res = await fetch(roomPath(room), { signal, cache: 'no-store' })
  if (!res.ok) throw await readError(res)
  const body = clientRoomSchema.safeParse(await res.json())
  if (!body.success) throw new ApiError(500, 'unexpected room response')
  return body.data
}

export async function getHistory(room: string, signal?: AbortSignal): Promise<ApiHistory> {
  const res = await fetch(`${roomPath(room)}/history?format=json`, { signal, cache: 'no-store' })
  if (!res.ok) throw await readError(res)
  const body = (await res.json()) as { room?: unknown; runs?: unknown }
  const whole = clientHistorySchema.safeParse(body)
  if (whole.success) return whole.data
  // Keep the runs that validate rather than showing no charts because of one odd run.
  const runs = Array.isArray(body?.runs) ? body.runs.flatMap((r) => { const p = historyRunSchema.safeParse(r); return p.success ? [p.data] : [] }) : []
  return { room: typeof body?.room === 'string' ? body.room : room, runs }
}

export async function createRoom(config: Partial<RoomConfig>, opts: { paused?: boolean } = {}): Promise<CreatedRoom> {
  const res = await fetch('/api/rooms', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // No room name: the server picks it and a short join code. `paused`: wait for the host's Start.
    body: JSON.stringify({ config, paused: opts.paused ?? false }),
  })
  if (!res.ok) throw await readError(res)
  const created = clientCreatedRoomSchema.safeParse(await res.json())
  if (!created.success) throw new ApiError(500, 'unexpected response to creating a room')
  return created.data
}

/**
 * Host actions, one shape per action (shared/protocol/http.ts controlActionSchema).
 * `new-run` carries a (partial) config for the next run, e.g. `{ algorithm: 'ssgd' }`.
 */
export async function control(room: string, token: string, body: ControlAction): Promise<void> {
  const res = await fetch(`${roomPath(room)}/control`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  })
  if (!res.ok) throw await readError(res)
}

/**
 * Deletes the room for good (DELETE /api/rooms/:room with the host token): the server disconnects
 * everyone in it, and its history and checkpoints are gone.
 */
export async function deleteRoom(room: string, token: string): Promise<void> {
  const res = await fetch(roomPath(room), { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })
  if (!res.ok) throw await readError(res)
}

const TOKEN_KEY = (room: string) => `tabswarm:hostToken:${room}`

export const hostTokens = {
  get(room: string): string | null {
    try {
      return localStorage.getItem(TOKEN_KEY(room))
    } catch {
      return null
    }
  },
  set(room: string, token: string): void {
    try {
      localStorage.setItem(TOKEN_KEY(room), token)
    } catch {
      // storage disabled (private mode): the page still works until it is closed
    }
  },
  /** Forgets the token, e.g. of a deleted room (its name and its join code are kept apart). */
  remove(room: string): void {
    try {
      localStorage.removeItem(TOKEN_KEY(room))
    } catch {
      // storage disabled: nothing was kept
    }
  },
  /** Rooms this browser hosts, newest first (for "reopen a room"). */
  list(): string[] {
    const out: string[] = []
    try {
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i)
        if (k?.startsWith('tabswarm:hostToken:')) out.push(k.slice('tabswarm:hostToken:'.length))
      }
    } catch {
      // ignore
    }
    return out.sort()
  },
}

/** Absolute join link for a room, for the QR code and copy button. */
export function joinUrlFor(room: string, serverJoinUrl?: string): string {
  if (serverJoinUrl) {
    try {
      return new URL(serverJoinUrl, window.location.origin).toString()
    } catch {
      // fall through
    }
  }
  return `${window.location.origin}/?room=${encodeURIComponent(room)}`
}
