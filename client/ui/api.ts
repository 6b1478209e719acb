import type { AlgorithmName, RoomConfig } from '../../shared/config'
import type { BackendName } from '../../shared/protocol/signaling'
import { historyResponseSchema, historyRunSchema, type EvictionRecord, type HistoryResponse } from '../../shared/protocol/history'

/**
 * The HTTP API as the UI sees it (issue 2 and 5). Responses are checked loosely on purpose:
 * the UI tolerates missing optional fields from an older server instead of showing nothing.
 */

export interface ApiLink {
  sent: number
  received: number
}

export interface ApiPeer {
  id: string
  name?: string
  agent?: 'browser' | 'node'
  step: number
  globalStep?: number
  loss: number | null
  accuracy: number | null
  /** null until the peer's first report. */
  backend: BackendName | string | null
  backendReason?: string | null
  /** Where the model runs (absent from older servers and clients). */
  computeThread?: 'worker' | 'main' | null
  samplesPerSec: number
  stepsPerSec?: number
  samples?: number
  bytesSent: number
  bytesReceived: number
  neighbors: string[]
  links?: Record<string, ApiLink>
  lr?: number | null
  h?: number | null
  consensus?: number | null
  stage?: string
  lastReportAt?: number
  suspect?: boolean
  /** Host fault injection in effect on this peer (absent from older servers). */
  slowFactor?: number
  addedLatencyMs?: number
}

export interface ApiRoom {
  room: string
  code?: string
  config: RoomConfig
  run?: number
  paused?: boolean
  epoch?: number
  roles?: { ps: string | null }
  checkpointStep?: number | null
  /** Server clock (ms) when this view was made: compare with peers' lastReportAt. */
  now?: number
  peers: ApiPeer[]
  /** Volunteers still downloading data / building the model (not yet in the roster). */
  joining?: { id: string; name: string | null; agent: 'browser' | 'node'; joinedAt: number; stage: string; away?: 'paused' | 'hidden' | null }[]
  /** Recent evictions, newest last (absent from older servers). */
  evictions?: EvictionRecord[]
  /** The current run diverged and the room paused itself (absent from older servers). */
  diverged?: { step: number; at: number; loss: number | null; reason: string } | null
  /** Where students join: built by the server from its public origin (PUBLIC_URL or LAN). */
  joinUrl?: string
  projectorUrl?: string
  /** The server knows no address other machines can reach: warn the teacher. */
  localOnly?: boolean
}

export type { EvictionRecord, HistoryPoint, HistoryRun } from '../../shared/protocol/history'
export type ApiHistory = HistoryResponse

export interface CreatedRoom {
  room: string
  code?: string
  hostToken: string
  joinUrl: string
  localOnly?: boolean
}

/** An error with the server's own message, shown to the user as is. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

async function readError(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`
  try {
    const body = (await res.json()) as { error?: unknown; message?: unknown }
    const m = body.error ?? body.message
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
  const body = (await res.json()) as ApiRoom
  if (!body || !Array.isArray(body.peers)) throw new ApiError(500, 'unexpected room response')
  return body
}

export async function getHistory(room: string, signal?: AbortSignal): Promise<ApiHistory> {
  const res = await fetch(`${roomPath(room)}/history?format=json`, { signal, cache: 'no-store' })
  if (!res.ok) throw await readError(res)
  const body = (await res.json()) as { room?: unknown; runs?: unknown }
  const whole = historyResponseSchema.safeParse(body)
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
  return (await res.json()) as CreatedRoom
}

/**
 * Host actions (issue 5). Body: `{ action, peer?, factor?, ms?, config? }`.
 * `new-run` carries a (partial) config for the next run, e.g. `{ algorithm: 'ssgd' }`.
 */
export type ControlAction =
  | { action: 'start' }
  | { action: 'pause' }
  | { action: 'resume' }
  | { action: 'reset' }
  | { action: 'new-run'; config: Partial<RoomConfig> & { algorithm: AlgorithmName } }
  | { action: 'kick'; peer: string }
  | { action: 'disconnect'; peer: string }
  | { action: 'slow'; peer: string; factor: number }
  | { action: 'latency'; peer: string; ms: number }

export async function control(room: string, token: string, body: ControlAction): Promise<void> {
  const res = await fetch(`${roomPath(room)}/control`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  })
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
