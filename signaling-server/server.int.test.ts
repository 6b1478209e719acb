import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { io as connect, type Socket } from 'socket.io-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { deadline } from '../shared/transport'
import { startServer, type RunningServer } from './server'

/**
 * The real server on port 0 with real socket.io clients over loopback. Waits are event-driven
 * with named deadlines; "nothing else happened" is checked with a marker sent afterwards on the
 * same ordered socket, never with a timer.
 */

const EVENT_DEADLINE_MS = 10_000
const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-server-'))
const staticDir = join(tmp, 'dist')
mkdirSync(join(staticDir, 'assets'), { recursive: true })
writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>tabswarm</title>')
writeFileSync(join(staticDir, 'assets', 'x.wasm'), new Uint8Array([0, 97, 115, 109]))
writeFileSync(join(staticDir, 'assets', 'app.js'), 'export {}')

let server: RunningServer
const sockets: Socket[] = []

async function start(dataDir = join(tmp, 'data')): Promise<RunningServer> {
  return startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir })
}

beforeAll(async () => {
  server = await start()
})
afterEach(() => {
  for (const s of sockets.splice(0)) s.disconnect()
})
afterAll(async () => {
  await server?.close()
  rmSync(tmp, { recursive: true, force: true })
})

type Any = Record<string, any> // test-side view of JSON answers

function waitFor<T = Any>(socket: Socket, event: string, name: string, pred: (p: T) => boolean = () => true): Promise<T> {
  const signal = deadline(name, EVENT_DEADLINE_MS)
  return new Promise((resolve, reject) => {
    const onEvent = (p: T) => {
      if (!pred(p)) return
      socket.off(event, onEvent)
      resolve(p)
    }
    socket.on(event, onEvent)
    signal.addEventListener('abort', () => { socket.off(event, onEvent); reject(signal.reason) }, { once: true })
  })
}

async function client(url = server.url): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  sockets.push(s)
  await waitFor(s, 'connect', 'client connects')
  return s
}

async function joinRoom(s: Socket, room: string, role: 'volunteer' | 'spectator' = 'volunteer'): Promise<Any> {
  const ack = await s.timeout(EVENT_DEADLINE_MS).emitWithAck('join', { v: 1, room, role })
  expect(ack.ok).toBe(true)
  if (role === 'spectator') return ack
  // Volunteers are pending until ready (as a tab after loading): only then in the roster.
  expect(ack.membership.peers).not.toContain(s.id)
  const inRoster = waitFor<Any>(s, 'membership', `${room}: roster with ${s.id}`, (m) => m.peers.includes(s.id))
  s.emit('ready', { v: 1 })
  return { ...ack, membership: await inRoster }
}

async function getJson(path: string, url = server.url): Promise<{ status: number; body: Any; headers: Headers }> {
  const r = await fetch(url + path)
  return { status: r.status, body: (await r.json()) as Any, headers: r.headers }
}

async function post(path: string, body: unknown, token?: string, url = server.url) {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: r.status, body: (await r.json()) as Any }
}

const REPORT = { v: 1, step: 12, loss: 0.7, accuracy: 0.81, backend: 'wasm', samplesPerSec: 250, bytesSent: 1000, bytesReceived: 900, neighbors: [] }

describe('signaling', () => {
  it('join acks with self and membership, and broadcasts the roster in join order', async () => {
    const a = await client()
    const b = await client()
    const ackA = await joinRoom(a, 'order')
    expect(ackA.self).toBe(a.id)
    expect(ackA.membership).toMatchObject({ v: 1, room: 'order', peers: [a.id], roles: { ps: null }, run: 1, paused: false })
    expect(ackA.membership.config.algorithm).toBe('dpsgd')
    const seenByA = waitFor<Any>(a, 'membership', 'a sees b join', (m) => m.peers.length === 2)
    const ackB = await joinRoom(b, 'order')
    expect(ackB.membership.peers).toEqual([a.id, b.id])
    const m = await seenByA
    expect(m.peers).toEqual([a.id, b.id])
    expect(m.epoch).toBe(ackA.membership.epoch + 1)
  })

  it('relays a signal to the named peer only, stamped with the sender', async () => {
    const [a, b, c] = [await client(), await client(), await client()]
    for (const s of [a, b, c]) await joinRoom(s, 'relay')
    const atB = waitFor<Any>(b, 'signal', 'b receives the offer')
    const atC = waitFor<Any>(c, 'signal', 'c receives its first signal')
    a.emit('signal', { v: 1, to: b.id, data: { type: 'offer', sdp: 'x' } })
    a.emit('signal', { v: 1, to: c.id, data: { marker: true } })
    expect(await atB).toEqual({ v: 1, from: a.id, data: { type: 'offer', sdp: 'x' } })
    // c's first signal is the marker sent after the offer: the offer never reached c.
    expect((await atC).data).toEqual({ marker: true })
  })

  it('refuses to relay outside the room', async () => {
    const [a, other] = [await client(), await client()]
    await joinRoom(a, 'relay-a')
    await joinRoom(other, 'relay-b')
    const err = waitFor<Any>(a, 'error', 'relay refused')
    a.emit('signal', { v: 1, to: other.id, data: { type: 'offer' } })
    expect(await err).toMatchObject({ event: 'signal', code: 'unknown-peer' })
  })

  it('removes a peer on disconnect and broadcasts the new roster', async () => {
    const [a, b] = [await client(), await client()]
    await joinRoom(a, 'leave')
    await joinRoom(b, 'leave')
    const left = waitFor<Any>(a, 'membership', 'a sees b leave', (m) => m.peers.length === 1)
    b.disconnect()
    expect((await left).peers).toEqual([a.id])
    expect((await getJson('/api/rooms/leave')).body.peers.map((p: Any) => p.id)).toEqual([a.id])
  })

  it('answers malformed events with an error naming the field and changes nothing', async () => {
    const a = await client()
    const badJoin = waitFor<Any>(a, 'error', 'bad join rejected')
    const ack = await a.timeout(EVENT_DEADLINE_MS).emitWithAck('join', { v: 1, room: 'bad room!', role: 'volunteer' })
    expect(ack).toMatchObject({ ok: false, code: 'bad-request' })
    expect(await badJoin).toMatchObject({ v: 1, event: 'join', code: 'bad-request', message: expect.stringMatching(/^room:/) })
    expect((await getJson('/api/rooms/bad%20room!')).status).toBe(404)

    await joinRoom(a, 'malformed')
    const before = (await getJson('/api/rooms/malformed')).body
    const errs: Any[] = []
    a.on('error', (e: Any) => errs.push(e))
    a.emit('report', { ...REPORT, step: -1 })
    a.emit('report', 'not an object')
    a.emit('signal', { v: 1, data: {} })
    a.emit('join', { v: 99, room: 'malformed', role: 'volunteer' })
    const last = waitFor<Any>(a, 'error', 'last malformed event rejected', (e) => e.event === 'suspect')
    a.emit('suspect', { v: 1, reason: 'x' })
    await last
    expect(errs.map((e) => [e.event, e.code, e.message.split(':')[0]])).toEqual([
      ['report', 'bad-request', 'step'], ['report', 'bad-request', 'payload'], ['signal', 'bad-request', 'to'],
      ['join', 'bad-request', 'v'], ['suspect', 'bad-request', 'peer'],
    ])
    const after = (await getJson('/api/rooms/malformed')).body
    expect({ ...after, now: 0 }).toEqual({ ...before, now: 0 })
  })

  it('stores reports and shows them in GET /api/rooms/:room', async () => {
    const a = await client()
    await joinRoom(a, 'reports')
    const marker = waitFor<Any>(a, 'error', 'marker')
    a.emit('report', REPORT)
    a.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
    await marker
    const { status, body } = await getJson('/api/rooms/reports')
    expect(status).toBe(200)
    expect(body).toMatchObject({ room: 'reports', run: 1, paused: false, checkpointStep: null })
    expect(body.config).toMatchObject({ algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp' })
    expect(body.peers[0]).toMatchObject({ id: a.id, step: 12, loss: 0.7, accuracy: 0.81, backend: 'wasm', samplesPerSec: 250, bytesSent: 1000, bytesReceived: 900, neighbors: [], suspect: false })
    expect(typeof body.peers[0].lastReportAt).toBe('number')
    const hist = (await getJson('/api/rooms/reports/history?format=json')).body
    expect(hist.runs[0].points[0]).toMatchObject({ loss: 0.7, accuracy: 0.81, peers: 1, bytes: 1000 })
    const csv = await (await fetch(`${server.url}/api/rooms/reports/history?format=csv`)).text()
    expect(csv.split('\n')[1]).toMatch(/^1,dpsgd,/)
  })

  it('pushes room-state to spectators, who are not in the roster', async () => {
    const [a, s] = [await client(), await client()]
    await joinRoom(a, 'watch')
    const first = waitFor<Any>(s, 'room-state', 'spectator gets initial state')
    const ack = await joinRoom(s, 'watch', 'spectator')
    expect(ack.membership.peers).toEqual([a.id])
    expect((await first).peers.map((p: Any) => p.id)).toEqual([a.id])
    const updated = waitFor<Any>(s, 'room-state', 'spectator sees the report', (st) => st.peers[0]?.step === 12)
    a.emit('report', REPORT)
    expect((await updated).peers[0].loss).toBe(0.7)
  })

  it('evicts a peer that both its neighbours report as suspect, and tells it', async () => {
    const [a, b, c] = [await client(), await client(), await client()]
    for (const s of [a, b, c]) await joinRoom(s, 'suspects')
    const told = waitFor<Any>(c, 'error', 'c is told', (e) => e.code === 'evicted')
    const gone = waitFor<Any>(a, 'membership', 'roster without c', (m) => m.peers.length === 2)
    a.emit('suspect', { v: 1, peer: c.id, reason: 'missed 5 deadlines' })
    b.emit('suspect', { v: 1, peer: c.id, reason: 'missed 5 deadlines' })
    await told
    expect((await gone).peers).toEqual([a.id, b.id])
  })
})

describe('HTTP API', () => {
  it('serves /healthz with the cross-origin isolation headers', async () => {
    const r = await getJson('/healthz')
    expect(r.status).toBe(200)
    expect(r.body.ok).toBe(true)
    expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin')
    expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp')
    expect(r.headers.get('cross-origin-resource-policy')).toBe('same-origin')
  })

  it('serves the client with SPA fallback, correct MIME types and isolation headers', async () => {
    for (const path of ['/', '/host', '/room/ABC234', '/projector/ABC234']) {
      const r = await fetch(server.url + path)
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toMatch(/^text\/html/)
      expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp')
      expect(await r.text()).toContain('<title>tabswarm</title>')
    }
    expect((await fetch(`${server.url}/assets/x.wasm`)).headers.get('content-type')).toBe('application/wasm')
    expect((await fetch(`${server.url}/assets/app.js`)).headers.get('content-type')).toMatch(/^text\/javascript/)
    expect((await fetch(`${server.url}/assets/missing.js`)).status).toBe(404)
    expect((await fetch(`${server.url}/../../etc/passwd`)).status).not.toBe(500)
  })

  it('answers 503 with a hint when the client is not built', async () => {
    const bare = await startServer({ port: 0, host: '127.0.0.1', dataDir: join(tmp, 'bare'), staticDir: join(tmp, 'nowhere') })
    try {
      const r = await fetch(`${bare.url}/room/X`)
      expect(r.status).toBe(503)
      expect(await r.text()).toContain('npm run build')
    } finally {
      await bare.close()
    }
  })

  it('serves /data/mnist/train.bin as cached binary', async () => {
    const r = await fetch(`${server.url}/data/mnist/train.bin`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('application/octet-stream')
    expect(r.headers.get('cache-control')).toMatch(/max-age=/)
    expect(r.headers.get('cross-origin-resource-policy')).toBe('same-origin')
    const bytes = new Uint8Array(await r.arrayBuffer())
    // 60,000 images of 784 bytes at least.
    expect(bytes.byteLength).toBeGreaterThan(60_000 * 784)
    const again = await fetch(`${server.url}/data/mnist/train.bin`, { headers: { 'If-None-Match': r.headers.get('etag')! } })
    expect(again.status).toBe(304)
    expect((await fetch(`${server.url}/data/nope/train.bin`)).status).toBe(404)
  })

  it('POST /api/rooms creates a room with a join code; invalid configs get 400 naming the field', async () => {
    const ok = await post('/api/rooms', { algorithm: 'decentlam', lr: 0.01 })
    expect(ok.status).toBe(201)
    expect(ok.body.code).toMatch(/^[2-9A-HJKMNP-Z]{6}$/)
    expect(ok.body.joinUrl).toContain(`?room=${ok.body.code}`)
    expect(typeof ok.body.hostToken).toBe('string')
    const room = (await getJson(`/api/rooms/${ok.body.code.toLowerCase()}`)).body
    expect(room.config).toMatchObject({ algorithm: 'decentlam', topology: 'exponential', lr: 0.01 })
    expect((await getJson('/api/rooms')).body.rooms).toContainEqual(expect.objectContaining({ code: ok.body.code, algorithm: 'decentlam', peers: 0 }))

    const badLr = await post('/api/rooms', { algorithm: 'dpsgd', lr: -1 })
    expect(badLr.status).toBe(400)
    expect(badLr.body).toMatchObject({ field: 'lr', error: expect.stringContaining('lr') })
    const badCombo = await post('/api/rooms', { algorithm: 'asgd', topology: 'ring' })
    expect(badCombo).toMatchObject({ status: 400, body: { field: 'topology' } })
    expect((await post('/api/rooms', '{not json')).status).toBe(400)
    expect((await post('/api/rooms', { room: 'bad name!', config: {} })).body.field).toBe('room')
    expect((await post('/api/rooms', 'x'.repeat(200_000))).status).toBe(413)
    expect((await getJson('/api/rooms/NOSUCHROOM')).status).toBe(404)
  })

  it('host controls need the token: 401 without, 403 wrong, 200 with; effects reach the peers', async () => {
    const created = await post('/api/rooms', { room: 'class', config: { algorithm: 'dpsgd' } })
    const token = created.body.hostToken as string
    const [a, b] = [await client(), await client()]
    await joinRoom(a, 'class')
    await joinRoom(b, 'class')
    const before = (await getJson('/api/rooms/class')).body

    expect((await post('/api/rooms/class/control', { action: 'pause' })).status).toBe(401)
    expect((await post('/api/rooms/class/control', { action: 'pause' }, 'wrong-token')).status).toBe(403)
    const other = await post('/api/rooms', {})
    expect((await post('/api/rooms/class/control', { action: 'pause' }, other.body.hostToken)).status).toBe(403)
    expect((await getJson('/api/rooms/class')).body.paused).toBe(before.paused)

    const paused = waitFor<Any>(a, 'membership', 'pause broadcast', (m) => m.paused)
    expect((await post('/api/rooms/class/control', { action: 'pause' }, token)).status).toBe(200)
    expect((await paused).paused).toBe(true)

    const slow = waitFor<Any>(b, 'command', 'slow command')
    expect((await post('/api/rooms/class/control', { action: 'slow', peer: b.id, factor: 4 }, token)).status).toBe(200)
    expect(await slow).toEqual({ v: 1, type: 'slow', factor: 4 })
    expect((await post('/api/rooms/class/control', { action: 'slow', peer: b.id }, token)).body.field).toBe('factor')
    expect((await post('/api/rooms/class/control', { action: 'fly' }, token)).body.field).toBe('action')

    const newRun = waitFor<Any>(a, 'membership', 'new run broadcast', (m) => m.run === 2)
    const r = await post('/api/rooms/class/control', { action: 'new-run', config: { algorithm: 'asgd' } }, token)
    expect(r.status).toBe(200)
    const m = await newRun
    // A new run sends every volunteer back to pending; they re-enter (in ready order) when loaded.
    expect(m).toMatchObject({ run: 2, paused: false, config: { algorithm: 'asgd', topology: 'star' }, peers: [], roles: { ps: null } })
    const back = waitFor<Any>(a, 'membership', 'both back in run 2', (mm) => mm.run === 2 && mm.peers.length === 2)
    a.emit('ready', { v: 1 })
    await waitFor<Any>(a, 'membership', 'a back', (mm) => mm.peers.includes(a.id))
    b.emit('ready', { v: 1 })
    expect(await back).toMatchObject({ peers: [a.id, b.id], roles: { ps: a.id } })
    const hist = (await getJson('/api/rooms/class/history')).body
    expect(hist.runs.map((x: Any) => x.config.algorithm)).toEqual(['dpsgd', 'asgd'])

    const kicked = waitFor<Any>(b, 'disconnect', 'b is disconnected')
    const roster = waitFor<Any>(a, 'membership', 'roster without b', (mm) => mm.peers.length === 1)
    expect((await post('/api/rooms/class/control', { action: 'kick', peer: b.id }, token)).status).toBe(200)
    await kicked
    expect((await roster).peers).toEqual([a.id])
  })

  it('keeps the latest checkpoint from peers and serves it as a download', async () => {
    const a = await client()
    await joinRoom(a, 'ckpt')
    expect((await getJson('/api/rooms/ckpt/model')).status).toBe(404)
    const params = new Uint8Array([1, 2, 3, 4, 250])
    a.emit('checkpoint', { v: 1, step: 40, schemaHash: 'abc', params })
    a.emit('checkpoint', { v: 1, step: 30, schemaHash: 'abc', params: new Uint8Array([9]) })
    const marker = waitFor<Any>(a, 'error', 'marker after checkpoints')
    a.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
    await marker
    const r = await fetch(`${server.url}/api/rooms/ckpt/model`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-disposition')).toContain('attachment')
    const body = (await r.json()) as Any
    expect(body).toMatchObject({ step: 40, schemaHash: 'abc', run: 1 })
    expect([...Buffer.from(body.weights, 'base64')]).toEqual([...params])
    expect((await getJson('/api/rooms/ckpt')).body.checkpointStep).toBe(40)
  })
})

describe('persistence', () => {
  it('rooms, host tokens, history and the checkpoint survive a restart with the same dataDir', async () => {
    const dataDir = join(tmp, 'restart')
    let s = await start(dataDir)
    const created = await post('/api/rooms', { algorithm: 'local-sgd' }, undefined, s.url)
    const { code, hostToken, room } = created.body
    const a = await client(s.url)
    await joinRoom(a, code)
    a.emit('report', REPORT)
    a.emit('checkpoint', { v: 1, step: 7, schemaHash: 'h1', params: new Uint8Array([7, 7]) })
    const marker = waitFor<Any>(a, 'error', 'marker')
    a.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
    await marker
    const before = (await getJson(`/api/rooms/${code}`, s.url)).body
    a.disconnect()
    await s.close()

    s = await start(dataDir)
    try {
      const after = await getJson(`/api/rooms/${code}`, s.url)
      expect(after.status).toBe(200)
      expect(after.body).toMatchObject({ room, code, run: 1, checkpointStep: 7, peers: [], config: before.config })
      expect(after.body.epoch).toBeGreaterThan(before.epoch)
      const hist = (await getJson(`/api/rooms/${code}/history`, s.url)).body
      expect(hist.runs[0].points.length).toBeGreaterThan(0)
      expect((await post(`/api/rooms/${code}/control`, { action: 'pause' }, hostToken, s.url)).status).toBe(200)
      expect((await post(`/api/rooms/${code}/control`, { action: 'pause' }, 'nope', s.url)).status).toBe(403)
      // A volunteer reconnecting rejoins the same room and learns where to resume from.
      const b = await client(s.url)
      const ack = await joinRoom(b, code)
      expect(ack.membership).toMatchObject({ room, paused: true, peers: [b.id] })
      expect(ack.checkpointStep).toBe(7)
      const model = (await getJson(`/api/rooms/${code}/model`, s.url)).body
      expect(model).toMatchObject({ step: 7, schemaHash: 'h1' })
    } finally {
      for (const x of sockets.splice(0)) x.disconnect()
      await s.close()
    }
  })
})
