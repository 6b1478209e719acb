import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { io as connect, type Socket } from 'socket.io-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as tf from '@tensorflow/tfjs'
import { setupNodeBackend } from '../client/runtime/node-backend'
import { modelLayout } from '../shared/model-shapes'
import { nextEvent } from '../tests/support/socket-events'
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

const waitFor = nextEvent

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

/** Parameters of the right size and schema hash for a room of `model` on `dataset`. */
function checkpointParams(model: 'mlp' | 'cnn' = 'mlp', dataset: 'mnist' | 'synthetic' = 'synthetic', fill = (i: number) => Math.sin(i)) {
  const layout = modelLayout(model, dataset)
  if (!layout.ok) throw new Error(layout.error)
  const values = Float32Array.from({ length: layout.paramCount }, (_, i) => fill(i))
  return { values, schemaHash: layout.schemaHash, params: new Uint8Array(values.buffer) }
}

/** Emits a marker that errors (suspect of nobody) and waits for it: everything sent before was handled. */
async function settle(s: Socket, name: string): Promise<void> {
  const marker = waitFor<Any>(s, 'error', name, (e) => e.event === 'suspect')
  s.emit('suspect', { v: 1, peer: 'nobody', reason: 'marker' })
  await marker
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

  it("POST /api/rooms with paused: true waits for the host's start; a bad paused gets 400", async () => {
    const created = await post('/api/rooms', { room: 'lesson', config: { algorithm: 'dpsgd' }, paused: true })
    expect(created).toMatchObject({ status: 201, body: { room: 'lesson', paused: true } })
    expect((await getJson('/api/rooms/lesson')).body.paused).toBe(true)
    const a = await client()
    const ack = await joinRoom(a, 'lesson')
    expect(ack.membership.paused).toBe(true)
    const started = waitFor<Any>(a, 'membership', 'start broadcast', (m) => m.paused === false)
    expect((await post('/api/rooms/lesson/control', { action: 'start' }, created.body.hostToken)).status).toBe(200)
    expect((await started).paused).toBe(false)
    expect((await post('/api/rooms', { room: 'lesson2', config: {}, paused: 'yes' })).body.field).toBe('paused')
    expect((await post('/api/rooms', { room: 'lesson3', config: {} })).body.paused).toBe(false)
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

  it('keeps the latest checkpoint of the expected peer and serves it as JSON, binary and a TensorFlow.js model', async () => {
    expect((await post('/api/rooms', { room: 'ckpt', config: { dataset: 'synthetic', model: 'mlp' } })).status).toBe(201)
    const [a, b] = [await client(), await client()]
    await joinRoom(a, 'ckpt')
    await joinRoom(b, 'ckpt')
    expect((await getJson('/api/rooms/ckpt/model')).status).toBe(404)
    const cp = checkpointParams()
    a.emit('checkpoint', { v: 1, step: 40, schemaHash: cp.schemaHash, params: cp.params })
    // An older step adds nothing (no error either: it is just not newer).
    a.emit('checkpoint', { v: 1, step: 30, schemaHash: cp.schemaHash, params: checkpointParams('mlp', 'synthetic', () => 9).params })
    await settle(a, 'checkpoints handled')
    const r = await fetch(`${server.url}/api/rooms/ckpt/model`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-disposition')).toContain('attachment')
    const body = (await r.json()) as Any
    expect(body).toMatchObject({ step: 40, schemaHash: cp.schemaHash, run: 1 })
    expect([...Buffer.from(body.weights, 'base64')]).toEqual([...cp.params])
    expect((await getJson('/api/rooms/ckpt')).body.checkpointStep).toBe(40)
    const bin = await fetch(`${server.url}/api/rooms/ckpt/model?format=bin`)
    expect(bin.headers.get('x-tabswarm-schema-hash')).toBe(cp.schemaHash)
    expect(new Uint8Array(await bin.arrayBuffer())).toEqual(cp.params)

    // The model.json URL is what tf.loadLayersModel takes: it fetches the weights file itself.
    await setupNodeBackend('cpu')
    for (const url of [`${server.url}/api/rooms/ckpt/model.json`, `${server.url}/api/rooms/ckpt/model?format=tfjs`]) {
      const model = await tf.loadLayersModel(url)
      const kernel = model.getLayer('dense0').getWeights()[0]
      expect(kernel.shape).toEqual([32, 128])
      expect(Array.from(await kernel.data()).slice(0, 4)).toEqual(Array.from(cp.values.subarray(0, 4)))
      const y = model.predict(tf.zeros([2, 32])) as tf.Tensor
      expect(y.shape).toEqual([2, 10])
      y.dispose()
      model.dispose()
    }
  })

  it('refuses a checkpoint from the wrong peer, of the wrong size, non-finite or with a made-up step, with a clear error', async () => {
    expect((await post('/api/rooms', { room: 'ckpt-bad', config: { dataset: 'synthetic', model: 'mlp' } })).status).toBe(201)
    const [a, b] = [await client(), await client()]
    await joinRoom(a, 'ckpt-bad')
    await joinRoom(b, 'ckpt-bad')
    const ok = checkpointParams()
    a.emit('report', { ...REPORT, step: 50, globalStep: 60, stepsPerSec: 2 })
    a.emit('checkpoint', { v: 1, step: 55, schemaHash: ok.schemaHash, params: ok.params })
    await settle(a, 'good checkpoint stored')
    expect((await fetch(`${server.url}/api/rooms/ckpt-bad/model?format=bin`)).headers.get('x-tabswarm-step')).toBe('55')

    const errs: Any[] = []
    a.on('error', (e: Any) => errs.push(e))
    b.on('error', (e: Any) => errs.push({ ...e, from: 'b' }))
    const nan = checkpointParams('mlp', 'synthetic', (i) => (i === 77 ? Number.NaN : 0.5))
    b.emit('checkpoint', { v: 1, step: 58, schemaHash: ok.schemaHash, params: ok.params })
    a.emit('checkpoint', { v: 1, step: 58, schemaHash: ok.schemaHash, params: ok.params.subarray(0, ok.params.length - 4) })
    a.emit('checkpoint', { v: 1, step: 58, schemaHash: 'mlp-deadbeef', params: ok.params })
    a.emit('checkpoint', { v: 1, step: 58, schemaHash: ok.schemaHash, params: nan.params })
    // Reported: step 60 at 2 steps/s, so 60 + 1000 + 5 × 2 = 1070 at most.
    a.emit('checkpoint', { v: 1, step: 1071, schemaHash: ok.schemaHash, params: ok.params })
    a.emit('checkpoint', { v: 1, step: -3, schemaHash: ok.schemaHash, params: ok.params })
    await settle(b, 'b checkpoint handled')
    await settle(a, 'a checkpoints handled')
    const got = errs.filter((e) => e.event === 'checkpoint').map((e) => [e.from ?? 'a', e.code, e.message.split(':')[0]])
    expect(got).toEqual([
      ['b', 'not-expected', 'checkpoint'], ['a', 'bad-length', 'params'], ['a', 'bad-schema', 'schemaHash'],
      ['a', 'non-finite', 'params'], ['a', 'bad-step', 'step'], ['a', 'bad-request', 'step'],
    ])
    const after = await fetch(`${server.url}/api/rooms/ckpt-bad/model?format=bin`)
    expect(after.headers.get('x-tabswarm-step')).toBe('55')
    expect(new Uint8Array(await after.arrayBuffer())).toEqual(ok.params)
  })
})

describe('away (paused or hidden tabs)', () => {
  it('takes a peer out of the roster with a new epoch, keeps it joined, and ready brings it back', async () => {
    const [a, b, c] = [await client(), await client(), await client()]
    for (const s of [a, b, c]) await joinRoom(s, 'away')
    const start = (await getJson('/api/rooms/away')).body
    const without = waitFor<Any>(a, 'membership', 'roster without c', (m) => !m.peers.includes(c.id))
    c.emit('away', { v: 1, reason: 'paused' })
    const m = await without
    expect(m.peers).toEqual([a.id, b.id])
    expect(m.epoch).toBe(start.epoch + 1)
    const mid = (await getJson('/api/rooms/away')).body
    expect(mid.peers.map((p: Any) => p.id)).toEqual([a.id, b.id])
    expect(mid.joining).toEqual([expect.objectContaining({ id: c.id, away: 'paused', stage: 'paused' })])
    expect(mid.evictions).toEqual([])
    // Still a member of the room: it may report while away, and nobody can report it any more.
    c.emit('report', { ...REPORT, stage: 'paused' })
    const refused = waitFor<Any>(a, 'error', 'suspect of an away peer refused')
    a.emit('suspect', { v: 1, peer: c.id, reason: 'missed deadlines' })
    expect(await refused).toMatchObject({ event: 'suspect', code: 'unknown-peer' })
    const back = waitFor<Any>(a, 'membership', 'c back', (mm) => mm.peers.includes(c.id))
    c.emit('ready', { v: 1 })
    const mm = await back
    expect(mm.peers).toEqual([a.id, b.id, c.id])
    expect(mm.epoch).toBe(start.epoch + 2)
    expect((await getJson('/api/rooms/away')).body.joining).toEqual([])
  })

  it('rejects a malformed away or one from a socket that is not a volunteer here; nothing changes', async () => {
    const [a, s, stranger] = [await client(), await client(), await client()]
    await joinRoom(a, 'away-bad')
    await joinRoom(s, 'away-bad', 'spectator')
    const before = (await getJson('/api/rooms/away-bad')).body
    const errs: Any[] = []
    for (const [name, sock] of [['a', a], ['s', s], ['x', stranger]] as const) sock.on('error', (e: Any) => errs.push([name, e.event, e.code, e.message.split(':')[0]]))
    a.emit('away', { v: 1, reason: 'bored' })
    a.emit('away', { v: 1 })
    a.emit('away', 'paused')
    s.emit('away', { v: 1, reason: 'hidden' })
    stranger.emit('away', { v: 1, reason: 'hidden' })
    await settle(a, 'a handled')
    await settle(s, 's handled')
    await settle(stranger, 'stranger handled')
    expect(errs.filter((e) => e[1] === 'away')).toEqual([
      ['a', 'away', 'bad-request', 'reason'], ['a', 'away', 'bad-request', 'reason'], ['a', 'away', 'bad-request', 'payload'],
      ['s', 'away', 'not-joined', 'join a room as a volunteer first'], ['x', 'away', 'not-joined', 'join a room as a volunteer first'],
    ])
    const after = (await getJson('/api/rooms/away-bad')).body
    expect({ ...after, now: 0 }).toEqual({ ...before, now: 0 })
  })
})

describe('public origin (join links students can open)', () => {
  it('a server only reachable on loopback says so; the room answer carries the links', async () => {
    const info = (await getJson('/api/info')).body
    expect(info).toMatchObject({ publicUrl: server.url, localOnly: true, publicUrlSource: 'request' })
    const created = await post('/api/rooms', { room: 'links' })
    expect(created.body).toMatchObject({ joinUrl: `${server.url}/?room=${created.body.code}`, localOnly: true })
    const room = (await getJson('/api/rooms/links')).body
    expect(room).toMatchObject({ joinUrl: created.body.joinUrl, projectorUrl: `${server.url}/projector/${created.body.code}`, localOnly: true })
  })

  it('a teacher on localhost gets the LAN address in links when the server listens on every interface', async () => {
    const lan = await startServer({ port: 0, host: '0.0.0.0', dataDir: join(tmp, 'lan'), staticDir, lanAddresses: ['10.11.12.13', '192.168.0.9'] })
    try {
      const base = `http://127.0.0.1:${lan.port}`
      expect(lan.lanUrl).toBe(`http://10.11.12.13:${lan.port}`)
      expect((await getJson('/api/info', base)).body).toMatchObject({ publicUrl: lan.lanUrl, publicUrlSource: 'lan', localOnly: false })
      const created = await post('/api/rooms', {}, undefined, base)
      expect(created.body.joinUrl).toBe(`http://10.11.12.13:${lan.port}/?room=${created.body.code}`)
      expect((await getJson(`/api/rooms/${created.body.code}`, base)).body.joinUrl).toBe(created.body.joinUrl)
    } finally {
      await lan.close()
    }
  })

  it('PUBLIC_URL wins over everything', async () => {
    const pub = await startServer({ port: 0, host: '127.0.0.1', dataDir: join(tmp, 'pub'), staticDir, publicUrl: 'https://class.example.org', lanAddresses: ['10.0.0.1'] })
    try {
      expect((await getJson('/api/info', pub.url)).body).toMatchObject({ publicUrl: 'https://class.example.org', publicUrlSource: 'PUBLIC_URL', localOnly: false })
      const created = await post('/api/rooms', {}, undefined, pub.url)
      expect(created.body.joinUrl).toBe(`https://class.example.org/?room=${created.body.code}`)
      expect(created.body.dashboardUrl).toBe(`https://class.example.org/room/${created.body.code}`)
    } finally {
      await pub.close()
    }
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
    const cp = checkpointParams('mlp', 'mnist')
    a.emit('checkpoint', { v: 1, step: 7, schemaHash: cp.schemaHash, params: cp.params })
    await settle(a, 'report and checkpoint handled')
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
      expect(model).toMatchObject({ step: 7, schemaHash: cp.schemaHash })
    } finally {
      for (const x of sockets.splice(0)) x.disconnect()
      await s.close()
    }
  })

  it('a diverged run: the room pauses itself, tells every peer, keeps it in the history across a restart; new-run clears it', async () => {
    const dataDir = join(tmp, 'diverge')
    let s = await start(dataDir)
    const { code, hostToken } = (await post('/api/rooms', { algorithm: 'dpsgd', lr: 5 }, undefined, s.url)).body
    const a = await client(s.url)
    const b = await client(s.url)
    await joinRoom(a, code)
    await joinRoom(b, code)
    const verdict = { step: 41, loss: 57.5, reason: 'the mean training loss grew from 2.301 to 57.500 (limit 23.010)' }
    const announced = waitFor<Any>(b, 'membership', 'membership says diverged', (m) => m.diverged !== null)
    a.emit('report', { ...REPORT, step: 41, globalStep: 41, loss: 57.5, stage: 'diverged', diverged: verdict })
    const m = await announced
    expect(m).toMatchObject({ paused: true, diverged: { ...verdict } })
    const view = (await getJson(`/api/rooms/${code}`, s.url)).body
    expect(view).toMatchObject({ paused: true, diverged: verdict })
    // Both volunteers are still in the room: nobody was dropped for it.
    expect(view.peers.map((p: Any) => p.id).sort()).toEqual([a.id, b.id].sort())
    expect(view.peers.find((p: Any) => p.id === a.id).stage).toBe('diverged')
    a.disconnect()
    b.disconnect()
    await s.close()
    s = await start(dataDir)
    try {
      const hist = (await getJson(`/api/rooms/${code}/history`, s.url)).body
      expect(hist.runs[0].diverged).toMatchObject(verdict)
      expect((await post(`/api/rooms/${code}/control`, { action: 'new-run', config: { algorithm: 'dpsgd', lr: 0.05 } }, hostToken, s.url)).status).toBe(200)
      const after = (await getJson(`/api/rooms/${code}`, s.url)).body
      expect(after).toMatchObject({ run: 2, paused: false, diverged: null })
      const hist2 = (await getJson(`/api/rooms/${code}/history`, s.url)).body
      expect(hist2.runs.map((r: Any) => [r.run, r.diverged?.step ?? null])).toEqual([[1, 41], [2, null]])
    } finally {
      for (const x of sockets.splice(0)) x.disconnect()
      await s.close()
    }
  })

  it('a restart looks like a dropped connection to clients, so they reconnect by themselves', async () => {
    const dataDir = join(tmp, 'reconnect')
    let s = await start(dataDir)
    const port = s.port
    // The options a tab uses: websocket, socket.io's own reconnection (fast here).
    const tab = connect(s.url, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 300, forceNew: true })
    sockets.push(tab)
    try {
      await waitFor(tab, 'connect', 'tab connects')
      await joinRoom(tab, 'comeback')
      const firstId = tab.id
      const dropped = waitFor<string>(tab, 'disconnect', 'tab sees the server go')
      await s.close()
      // 'io server disconnect' would mean "sent away": socket.io then never reconnects.
      expect(await dropped).toBe('transport close')
      s = await startServer({ port, host: '127.0.0.1', dataDir, staticDir })
      await waitFor(tab, 'connect', 'tab reconnects on its own')
      expect(tab.id).not.toBe(firstId)
      const ack = await joinRoom(tab, 'comeback')
      expect(ack.membership.peers).toEqual([tab.id])
    } finally {
      tab.disconnect()
      await s.close()
    }
  })
})
