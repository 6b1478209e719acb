import { afterAll, beforeAll, expect } from 'vitest'
import type { Browser } from 'playwright-core'
import type { ControlAction, CreatedRoomResponse } from '../../shared/protocol/http'
import { launchBrowser } from './browser'
import type { NodePeer } from './node-peer'
import { cleanup, startTestServer, type TestServer } from './server'

/**
 * The setup the end-to-end and integration files share, and the API calls a host makes. The
 * response types come from shared/protocol/http.ts, the server's own contract.
 */

export interface ServerEnvironment {
  server: TestServer
  /** Node volunteers the file started: killed (SIGKILL) after its tests, before the server closes. */
  peers: NodePeer[]
}

/**
 * A real server on an ephemeral port (fresh data dir), torn down after the file: its Node
 * volunteers killed, the server closed, the data dir removed. Call it at the top of the file or
 * inside `describe`; read `env.server` inside tests (it exists once beforeAll has run).
 */
export function serverEnvironment(): ServerEnvironment {
  const env = { peers: [] as NodePeer[] } as ServerEnvironment
  beforeAll(async () => {
    env.server = await startTestServer()
  })
  afterAll(async () => {
    for (const p of env.peers) p.kill()
    await closeServer(env.server)
  })
  return env
}

/**
 * The setup every browser e2e file shares: a real server on an ephemeral port (fresh data dir)
 * and one headless Chromium, both torn down after the file. Call it inside `describe`; read
 * `env.server` / `env.browser` inside tests (they exist once beforeAll has run). A test that
 * restarts the server assigns the new one to `env.server` so the teardown closes that one.
 */
export function e2eEnvironment(): { server: TestServer; browser: Browser } {
  const env = {} as { server: TestServer; browser: Browser }
  beforeAll(async () => {
    env.server = await startTestServer()
    env.browser = await launchBrowser()
  })
  afterAll(async () => {
    await env.browser?.close()
    await closeServer(env.server)
  })
  return env
}

async function closeServer(server: TestServer | undefined): Promise<void> {
  await server?.close()
  if (server) cleanup(server.dataDir)
}

export const roomUrl = (server: { url: string }, room: string) => `${server.url}/api/rooms/${encodeURIComponent(room)}`

/**
 * POST /api/rooms as a host would: `body` is a bare config or `{ room?, config?, paused? }`.
 * Expects 201 (the failure shows the server's answer) and returns the created room.
 */
export async function createRoom(server: { url: string }, body: Record<string, unknown>): Promise<CreatedRoomResponse> {
  const r = await fetch(`${server.url}/api/rooms`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  })
  const text = await r.text()
  expect(r.status, text).toBe(201)
  return JSON.parse(text) as CreatedRoomResponse
}

/** POST /api/rooms/:room/control with the host's token; without one, as a stranger would. */
export function postControl(server: { url: string }, room: string, body: ControlAction, token?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  return fetch(`${roomUrl(server, room)}/control`, { method: 'POST', headers, body: JSON.stringify(body) })
}
