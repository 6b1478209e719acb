import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Socket } from 'socket.io-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignalingClient } from '../client/mesh/signaling-client'
import { iceServersGrantSchema, type IceServersGrant } from '../shared/protocol/signaling'
import { nextEvent, testSockets } from '../tests/support/socket-events'
import { cleanup } from '../tests/support/server'
import { startServer, type RunningServer } from './server'
import { turnCredential } from './turn'

/**
 * Server-issued ICE servers over a real socket.io server: each volunteer gets TURN credentials
 * for its own id on its own socket, renewed before they expire; spectators and public responses
 * never see them. coturn's acceptance of these credentials is tests/integration/turn-relay.int.test.ts.
 */

const SECRET = 'turn-test-secret'
/** Short, so a renewal (at 80 %: 1.6 s) comes within an event deadline. */
const TTL_SEC = 2
const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-turn-'))
let server: RunningServer
const connect = testSockets()

beforeAll(async () => {
  server = await startServer({
    port: 0, host: '127.0.0.1', dataDir, staticDir: dataDir, log: () => {},
    ice: { servers: [{ urls: 'stun:stun.example.org:3478' }], turn: { secret: SECRET, urls: ['turn:turn.example.org:3478'], ttlSec: TTL_SEC } },
  })
})
afterAll(async () => {
  await server.close()
  cleanup(dataDir)
})

async function joined(room: string, role: 'volunteer' | 'spectator'): Promise<{ s: Socket; grants: IceServersGrant[]; ack: Record<string, unknown> }> {
  const s = connect(server.url)
  const grants: IceServersGrant[] = []
  s.on('ice-servers', (g: unknown) => grants.push(iceServersGrantSchema.parse(g)))
  await nextEvent(s, 'connect', 'connect')
  const ack = (await s.timeout(10_000).emitWithAck('join', { v: 1, room, role })) as Record<string, unknown>
  expect(ack.ok).toBe(true)
  return { s, grants, ack }
}

/** Everything the server did with earlier events on this socket is done once this error comes back. */
async function settle(s: Socket): Promise<void> {
  const marker = nextEvent(s, 'error', 'marker answered', (e) => e.event === 'suspect')
  s.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
  await marker
}

describe('server-issued ICE servers', () => {
  it('a volunteer has its grant by the time its join is acknowledged: STUN, then TURN with a credential for its id', async () => {
    const before = Date.now()
    const { s, grants } = await joined('turn-a', 'volunteer')
    expect(grants).toHaveLength(1)
    const [stun, turn] = grants[0].iceServers
    expect(stun).toEqual({ urls: 'stun:stun.example.org:3478' })
    expect(turn.urls).toBe('turn:turn.example.org:3478')
    const [expiry, id] = turn.username!.split(':')
    expect(id).toBe(s.id)
    expect(Number(expiry) * 1000).toBe(grants[0].expiresAt)
    expect(grants[0].expiresAt! - before).toBeGreaterThanOrEqual(TTL_SEC * 1000)
    expect(turn.credential).toBe(turnCredential(SECRET, s.id!, 0, Number(expiry) * 1000).credential)
  })

  it('renews before expiry with a later credential, and on request (rate-bounded)', async () => {
    const { s, grants } = await joined('turn-b', 'volunteer')
    const first = grants[0]
    const renewed = await nextEvent<IceServersGrant>(s, 'ice-servers', 'pushed renewal')
    expect(Date.now()).toBeLessThan(first.expiresAt!)
    expect(renewed.expiresAt!).toBeGreaterThan(first.expiresAt!)
    expect(renewed.iceServers[1].username).not.toBe(first.iceServers[1].username)
    // Asked for: answered up to the burst, then refused.
    const errors: string[] = []
    s.on('error', (e: { event: string; code: string }) => { if (e.event === 'ice-servers') errors.push(e.code) })
    const n = grants.length
    for (let i = 0; i < 5; i++) s.emit('ice-servers', { v: 1 })
    await settle(s)
    expect(grants.length - n).toBeGreaterThanOrEqual(3)
    expect(errors).toContain('rate-limited')
  })

  it('spectators get none, cannot ask, and no public response carries a credential', async () => {
    const room = 'turn-c'
    const v = await joined(room, 'volunteer')
    const secret = v.grants[0].iceServers[1]
    const spec = await joined(room, 'spectator')
    const states: unknown[] = []
    spec.s.on('room-state', (st: unknown) => states.push(st))
    const refused = nextEvent(spec.s, 'error', 'spectator ice request refused', (e) => e.event === 'ice-servers')
    spec.s.emit('ice-servers', { v: 1 })
    expect((await refused).code).toBe('not-joined')
    await settle(spec.s)
    expect(spec.grants).toEqual([])
    const view = await fetch(`${server.url}/api/rooms/${room}`).then((r) => r.text())
    const hist = await fetch(`${server.url}/api/rooms/${room}/history?format=json`).then((r) => r.text())
    for (const text of [view, hist, JSON.stringify(states), JSON.stringify(spec.ack)]) {
      expect(text).not.toContain(secret.credential)
      expect(text).not.toContain(secret.username)
      expect(text).not.toContain('turn.example.org')
    }
  })

  it("the client's SignalingClient keeps the latest grant (what new links use)", async () => {
    const client = new SignalingClient(server.url, { socket: { transports: ['websocket'], reconnection: false, forceNew: true } })
    try {
      const joinedAs = await client.join({ room: 'turn-e', role: 'volunteer' }, AbortSignal.timeout(10_000))
      const first = client.iceGrant
      expect(first?.iceServers[1].username).toMatch(new RegExp(`^\\d+:${joinedAs.self}$`))
      await nextEvent(client.socket as unknown as Socket, 'ice-servers', 'pushed renewal')
      expect(client.iceGrant!.expiresAt!).toBeGreaterThan(first!.expiresAt!)
    } finally {
      client.close()
    }
  })

  it('a volunteer that left its room gets no more renewals and cannot ask', async () => {
    const { s, grants } = await joined('turn-d', 'volunteer')
    s.emit('leave', { v: 1 })
    const refused = nextEvent(s, 'error', 'ice request after leave refused', (e) => e.event === 'ice-servers')
    s.emit('ice-servers', { v: 1 })
    expect((await refused).code).toBe('not-joined')
    expect(grants).toHaveLength(1)
  })
})
