import type { Socket } from 'socket.io-client'
import { describe, expect, it } from 'vitest'
import { clientHistorySchema, type RoomResponse } from '../../shared/protocol/http'
import { nextEvent, testSockets } from '../support/socket-events'
import { createRoom, roomUrl, serverEnvironment } from '../support/e2e'
import { getJson } from '../support/server'

/**
 * A hostile participant against a real server on loopback: a short socket.io-client script, as a
 * student would write one. Each test is an attack from docs/security.md and asserts the honest
 * outcome. Waits are event-driven with named deadlines.
 */

const env = serverEnvironment()
const connect = testSockets()

type Any = Record<string, any> // test-side view of socket payloads

const once = nextEvent

async function volunteer(room: string): Promise<{ s: Socket; membership: Any }> {
  const s = connect(env.server.url)
  await once(s, 'connect', 'connect')
  const ack = await s.timeout(10_000).emitWithAck('join', { v: 1, room, role: 'volunteer' })
  expect(ack.ok).toBe(true)
  const listed = once<Any>(s, 'membership', `${room}: roster lists ${s.id}`, (m) => m.peers.includes(s.id))
  s.emit('ready', { v: 1 })
  return { s, membership: await listed }
}

/** Everything the server did with earlier events on this socket is done once this error comes back. */
async function settle(s: Socket): Promise<void> {
  const marker = once<Any>(s, 'error', 'marker answered', (e) => e.event === 'suspect' && e.message.includes('nobody'))
  s.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
  await marker
}

const REPORT = { v: 1, step: 12, loss: 0.7, accuracy: 0.81, backend: 'wasm', samplesPerSec: 250, bytesSent: 1000, bytesReceived: 900, neighbors: [] }

describe('hostile reports', () => {
  it('a report with 330,000 links is refused at the door; the room view stays small and answers at once', async () => {
    const { room } = await createRoom(env.server, {})
    const { s } = await volunteer(room)
    const linksOf = (n: number) => {
      const links: Record<string, { sent: number; received: number }> = {}
      for (let i = 0; i < n; i++) links[`p${i}`] = { sent: 1, received: 1 }
      return links
    }
    // Over the schema's count: an error naming the field.
    const refused = once<Any>(s, 'error', 'report refused', (e) => e.event === 'report')
    s.emit('report', { ...REPORT, links: linksOf(300) })
    expect((await refused).message).toMatch(/links/)
    // 330,000 entries (13 MB) exceed the largest message a room can need (a checkpoint of the
    // largest model): the server drops the connection before parsing any of it.
    const dropped = once<Any>(s, 'disconnect', 'oversized report drops the socket')
    s.emit('report', { ...REPORT, links: linksOf(330_000) })
    await dropped
    const r = await fetch(roomUrl(env.server, room))
    const text = await r.text()
    expect(r.status).toBe(200)
    expect(text.length).toBeLessThan(20_000)
  })

  it('links and neighbours outside the roster are dropped; steps beyond what the run could reach are cut', async () => {
    const { room } = await createRoom(env.server, {})
    const a = await volunteer(room)
    const b = await volunteer(room)
    a.s.emit('report', {
      ...REPORT, step: 2 ** 39, globalStep: 2 ** 39, neighbors: [b.s.id, 'ghost'],
      links: { [b.s.id!]: { sent: 5, received: 6 }, ghost: { sent: 1, received: 1 } },
    })
    await settle(a.s)
    const view = (await getJson<RoomResponse>(roomUrl(env.server, room))).body
    const me = view.peers.find((p) => p.id === a.s.id)!
    expect(me.neighbors).toEqual([b.s.id])
    expect(Object.keys(me.links)).toEqual([b.s.id])
    // The run started moments ago: a step of 2^39 is not believed.
    expect(me.globalStep).toBeLessThan(1e6)
  })

  it('non-finite or absurd numbers are refused, naming the field; alternating byte counters cannot inflate the run; the history stays finite and visible', async () => {
    const { room } = await createRoom(env.server, {})
    const { s } = await volunteer(room)
    for (const [field, value] of [['loss', -1e308], ['bytesSent', 1.7e308], ['globalStep', 2 ** 53 - 1]] as const) {
      const refused = once<Any>(s, 'error', `${field} refused`, (e) => e.event === 'report')
      s.emit('report', { ...REPORT, [field]: value })
      expect((await refused).message).toContain(field)
    }
    // Within the schema's bounds, a counter that jumps 0 → 1e15 → 0 → 1e15 …
    for (let i = 0; i < 6; i++) s.emit('report', { ...REPORT, bytesSent: i % 2 ? 1e15 : 0 })
    await settle(s)
    const hist = await getJson(`${roomUrl(env.server, room)}/history?format=json`)
    const parsed = clientHistorySchema.safeParse(hist.body)
    expect(parsed.success).toBe(true)
    const run = parsed.data!.runs.at(-1)!
    expect(run.points.length).toBeGreaterThan(0)
    for (const p of run.points) {
      for (const v of [p.t, p.globalStep, p.bytes, p.peers]) expect(Number.isFinite(v)).toBe(true)
      // Seconds since the run started bound what one peer can have sent at 10 Gbit/s.
      expect(p.bytes).toBeLessThan(1.25e9 * (p.t + 10))
    }
  })
})

describe('hostile event floods', () => {
  it('500 away/ready cycles at once: the rest are refused as rate-limited and the epoch moves a few dozen times, not a thousand', async () => {
    const { room } = await createRoom(env.server, {})
    const honest = await volunteer(room)
    const { s } = await volunteer(room)
    const before = (await getJson<RoomResponse>(roomUrl(env.server, room))).body.epoch
    let limited = 0
    s.on('error', (e: Any) => { if (e.code === 'rate-limited') limited++ })
    let memberships = 0
    honest.s.on('membership', () => memberships++)
    for (let i = 0; i < 500; i++) {
      s.emit('away', { v: 1, reason: 'paused' })
      s.emit('ready', { v: 1 })
    }
    await settle(s)
    await settle(honest.s)
    const after = (await getJson<RoomResponse>(roomUrl(env.server, room))).body.epoch
    expect(limited).toBeGreaterThan(900)
    expect(after - before).toBeLessThan(60)
    expect(memberships).toBeLessThan(60)
  })
})

describe('hostile room configs', () => {
  it('every crafted config is a 400 naming the field', async () => {
    const cases: [string, string][] = [
      ['{"__proto__":1}', '__proto__'],
      ['{"toString":1}', 'toString'],
      ['{"adam":{"a":1}}', 'adam.a'],
      ['{"schedule":{"kind":"cosine","x":1}}', 'schedule.x'],
      ['{"partition":"dirichlet:0"}', 'partition'],
      ['{"iceServers":[{"urls":"javascript:alert(1)"}]}', 'iceServers.0.urls'],
      ['{"dcLambda":1e300}', 'dcLambda'],
      ['{"adam":{"eps":1e9}}', 'adam.eps'],
      ['{"algorithm":"local-sgd","sync":{"kind":"qsr","hBase":2,"alpha":1e9}}', 'sync.alpha'],
      ['{"seed":1e300}', 'seed'],
    ]
    for (const [body, field] of cases) {
      const r = await fetch(`${env.server.url}/api/rooms`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
      const json = (await r.json()) as { error: string; field?: string }
      expect(r.status, body).toBe(400)
      expect(json.field, body).toBe(field)
      expect(json.error, body).toContain(field)
    }
  })

  it('TURN credentials reach a volunteer over its own socket, never a spectator or a public response', async () => {
    const ice = [{ urls: 'turn:turn.example.org:3478', username: 'alice', credential: 's3cret' }]
    const { room } = await createRoom(env.server, { iceServers: ice })
    // A spectator (anyone with the room name) is watching before and after the volunteer joins.
    const spectator = connect(env.server.url)
    const seen: unknown[] = []
    spectator.onAny((event: string, payload: unknown) => seen.push([event, payload]))
    await once(spectator, 'connect', 'spectator connect')
    seen.push(await spectator.timeout(10_000).emitWithAck('join', { v: 1, room, role: 'spectator' }))
    const { membership } = await volunteer(room)
    expect(membership.config.iceServers).toEqual(ice)
    spectator.emit('sync', { v: 1 })
    const synced = await once<Any>(spectator, 'membership', 'spectator sync answered')
    // Answered after the broadcast that listed the volunteer went out: anything leaked is in `seen`.
    expect(synced.config.iceServers).toEqual([{ urls: 'turn:turn.example.org:3478' }])
    const view = await fetch(roomUrl(env.server, room)).then((r) => r.text())
    const hist = await fetch(`${roomUrl(env.server, room)}/history?format=json`).then((r) => r.text())
    for (const text of [view, hist, JSON.stringify(seen)]) {
      expect(text).toContain('turn:turn.example.org:3478')
      expect(text).not.toContain('s3cret')
      expect(text).not.toContain('alice')
    }
  })
})

describe('hostile data requests', () => {
  it('whole-split shards under many seeds stay within the byte-bounded cache; seeds and partitions out of range are 400s', async () => {
    const { shardCacheBytes, SHARD_CACHE_MAX_BYTES } = await import('../../signaling-server/datasets')
    // Each is all 60,000 MNIST training images (~47 MB): 7 of them exceed the cache's bound.
    for (let seed = 0; seed < 7; seed++) {
      const r = await fetch(`${env.server.url}/data/mnist/train?peer=0&peers=1&seed=${seed}`)
      expect(r.status).toBe(200)
      await r.arrayBuffer()
      expect(shardCacheBytes()).toBeLessThanOrEqual(SHARD_CACHE_MAX_BYTES)
    }
    // New shards cost this address from a budget of whole splits: the flood is cut off, cached ones stay free.
    const statuses = await Promise.all([7, 8, 9, 10, 11, 12].map(async (seed) => {
      const r = await fetch(`${env.server.url}/data/mnist/train?peer=0&peers=1&seed=${seed}`)
      if (r.status === 429) expect(((await r.json()) as { field?: string }).field).toBe('seed')
      else await r.arrayBuffer()
      return r.status
    }))
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThan(0)
    const cached = await fetch(`${env.server.url}/data/mnist/train?peer=0&peers=1&seed=6`)
    expect(cached.status).toBe(200)
    await cached.arrayBuffer()
    for (const q of ['seed=1e300', 'seed=4294967296', 'seed=-1', 'partition=dirichlet:0', 'partition=label-skew:99999']) {
      const r = await fetch(`${env.server.url}/data/mnist/train?peer=0&peers=2&${q}`)
      expect(r.status, q).toBe(400)
    }
  }, 240_000)
})

describe('room floods', () => {
  // Last in the file: it spends this address's room budget.
  it('one address creating rooms by joining new names is cut off after its budget; a host deletes its room with its token only', async () => {
    const hosted = await createRoom(env.server, {})
    // Many sockets from one machine (one socket alone is already held to 2 joins a second).
    let refused = 0
    for (let k = 0; k < 30; k++) {
      const s = connect(env.server.url)
      await once(s, 'connect', 'connect')
      for (let i = 0; i < 9; i++) {
        const ack = await s.timeout(10_000).emitWithAck('join', { v: 1, room: `flood-${k}-${i}`, role: 'volunteer' })
        if (!ack.ok) {
          expect(ack.message).toMatch(/new rooms/)
          refused++
        } else s.emit('leave', { v: 1 })
      }
      s.disconnect()
    }
    // The budget is 200 new rooms per address (some went to the other tests of this file).
    expect(refused).toBeGreaterThanOrEqual(60)
    const list = (await getJson<{ rooms: unknown[] }>(`${env.server.url}/api/rooms`)).body.rooms
    expect(list.length).toBeLessThanOrEqual(200)
    // POST /api/rooms draws on the same budget.
    expect((await fetch(`${env.server.url}/api/rooms`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status).toBe(429)
    // Deleting: only with the room's own token; then the room and its history are gone.
    const del = (token: string) => fetch(roomUrl(env.server, hosted.room), { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } })
    expect((await del('nope')).status).toBe(403)
    expect((await del(hosted.hostToken)).status).toBe(200)
    expect((await fetch(roomUrl(env.server, hosted.room))).status).toBe(404)
    expect((await fetch(`${roomUrl(env.server, hosted.room)}/history`)).status).toBe(404)
  })
})
