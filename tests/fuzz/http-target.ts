import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import fc from 'fast-check'
import { io as connect, type Socket } from 'socket.io-client'
import { z } from 'zod'
import { DATASETS, MAX_SEED, partitionSchema, type RoomConfig } from '../../shared/config'
import { modelLayout } from '../../shared/model-shapes'
import { CONTROL_ACTIONS, PINNABLE_ROLES, errorBodySchema, healthResponseSchema } from '../../shared/protocol/http'
import { MAX_BODY_BYTES } from '../../signaling-server/http-api'
import {
  Tally, checkParams, hugeString, jsonish, nastyValue, show, toResult, trackProcessFailures, type FuzzOptions, type TargetResult,
} from './common'
import { configInput } from './config-target'
import { healthProblem, startFuzzServer, type FuzzServer } from './server-harness'

/**
 * Every HTTP route (signaling-server/http-api.ts, and the static fallback of server.ts) of the
 * real server on loopback, one request per case over a keep-alive agent: every method on every
 * route template (rooms, control, history, the model downloads, datasets and shards, info,
 * health, made-up paths), random query strings, bodies (configs valid and damaged, control
 * actions, invalid JSON, oversized, empty) under random content types, and random
 * Authorization headers (none, junk, another room's token, the room's own).
 *
 * Property, per response:
 *  - never a 5xx;
 *  - on the API (/api…, /data/…, /healthz) every 4xx is JSON `{ error, field? }`
 *    (shared/protocol/http.ts errorBodySchema) with a non-empty error, and a 400 names the
 *    field: `field` is set, or the error starts with `<field>:`;
 *  - 2xx JSON bodies parse; /healthz matches its schema.
 * And for the run: nothing logged as a failed route, no unhandled rejection, /healthz answers.
 *
 * State the routes need to go past their first checks: three rooms made at setup whose host
 * tokens the runner knows ('fz-h0' keeps two volunteers on sockets and a checkpoint, so kick,
 * slow, pin, rollback and the model downloads have something to act on; its token never goes
 * with a DELETE), rebuilt every MAINTAIN_EVERY cases from another loopback address, whose
 * room-creation budget the fuzzed POSTs (from 127.0.0.1) do not spend.
 *
 * Datasets: a whole split or a shard costs the server real work (about 0.1 s to 2 s each), so
 * a request that would be valid is replaced by one of a few fixed ones (cached after the first);
 * the fuzzing goes to the invalid parameter combinations.
 */

const FIXED_ROOMS = ['fz-h0', 'fz-h1', 'fz-h2'] as const
const STABLE_ROOM = FIXED_ROOMS[0]
/** The only fixed room a DELETE with its own token may remove (the maintenance makes it again). */
const DELETABLE_ROOM = FIXED_ROOMS[2]
const MAINTAIN_EVERY = 100
/**
 * The fuzzed requests come from 127.0.0.1; the runner's own setup from 127.0.0.N, N ≥ 2 (the whole
 * 127/8 is loopback), moving to the next address when one's room-creation budget is spent.
 */
const setupAddress = (n: number) => `127.0.0.${2 + (n % 250)}`
const REQUEST_TIMEOUT_MS = 30_000

/** The cheap dataset requests every valid one is mapped to. */
const CHEAP_SPLITS = [['synthetic', 'train'], ['synthetic', 'test'], ['mnist', 'test']] as const
const CHEAP_SHARDS = ['peer=0&peers=2', 'peer=1&peers=4&partition=label-skew:2&seed=3', 'peer=0&peers=3&partition=dirichlet:0.5'] as const

/** A copy of http-api.ts's shard query rule, used only to tell which random queries would make the server build a shard. */
const shardQuerySchema = z.object({
  peer: z.coerce.number().int().min(0),
  peers: z.coerce.number().int().min(1).max(4096),
  partition: partitionSchema.default('iid'),
  seed: z.coerce.number().int().min(0).max(MAX_SEED).default(0),
})

function shardWouldBuild(query: URLSearchParams): boolean {
  const q = shardQuerySchema.safeParse(Object.fromEntries(query))
  return q.success && q.data.peer < q.data.peers
}

// ---- requests ----

type RoomRef = { kind: 'fixed'; i: number } | { kind: 'raw'; text: string }
type AuthSpec = { kind: 'none' } | { kind: 'own' } | { kind: 'other'; i: number } | { kind: 'raw'; header: string }
type PeerRef = { kind: 'helper'; i: number } | { kind: 'raw'; value: unknown }

export interface HttpCase {
  method: string
  /** A path template: {room} (a room reference), {dataset} and {split} are filled in at run time. */
  template: string
  room: RoomRef
  dataset: string
  split: string
  query: [string, string][]
  auth: AuthSpec
  contentType: string | null
  body: { kind: 'none' } | { kind: 'json'; value: unknown } | { kind: 'text'; text: string } | { kind: 'control'; value: Record<string, unknown>; peer: PeerRef | null }
}

const TEMPLATES = [
  '/healthz', '/api/info', '/api/rooms', '/api/rooms', '/api/rooms', '/api', '/api/', '/api/rooms/', '/api/rooms/{room}', '/api/rooms/{room}',
  '/api/rooms/{room}/control', '/api/rooms/{room}/control', '/api/rooms/{room}/control', '/api/rooms/{room}/history',
  '/api/rooms/{room}/model', '/api/rooms/{room}/model.json', '/api/rooms/{room}/model.weights.bin', '/api/rooms/{room}/x',
  '/api/rooms/{room}/control/x', '/data/{dataset}/{split}', '/data/{dataset}/{split}', '/data/{dataset}/{split}.bin', '/data/', '/data/{dataset}',
  '/', '/index.html', '/assets/app.js', '/assets/missing.js', '/favicon.ico', '/host', '/room/ABCD', '/x.js', '/%', '/%E0%A4%A', '/..%2f..%2fetc%2fpasswd',
  '/assets/..%2f..%2f..%2fetc%2fpasswd', '//', '//api/rooms', '/api/rooms/%00', '/healthz/', '/HEALTHZ', '/api/info/x',
] as const

const pathText = fc.string({ unit: fc.constantFrom(...'abc-_.~%/09AZ'.split('')), maxLength: 24 })

const roomRef: fc.Arbitrary<RoomRef> = fc.oneof(
  { weight: 8, arbitrary: fc.nat(FIXED_ROOMS.length - 1).map((i): RoomRef => ({ kind: 'fixed', i })) },
  { weight: 2, arbitrary: fc.oneof(fc.constantFrom('nope', '%', '%zz', '%E0%A4%A', 'a%2Fb', '..', 'x'.repeat(300), '%00'), pathText).map((text): RoomRef => ({ kind: 'raw', text })) },
)

const authSpec: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<AuthSpec>({ kind: 'none' }) },
  { weight: 6, arbitrary: fc.constant<AuthSpec>({ kind: 'own' }) },
  { weight: 1, arbitrary: fc.nat(FIXED_ROOMS.length - 1).map((i): AuthSpec => ({ kind: 'other', i })) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom('Bearer', 'Bearer ', 'Bearer x', 'bearer  spaced  ', 'Basic dXNlcjpwYXNz', 'Bearer a b', 'Bearer ' + 'x'.repeat(5000), 'Token abc'),
      fc.string({ unit: fc.constantFrom(...'Bearer xyz=+/_-'.split('')), maxLength: 40 }),
    ).map((header): AuthSpec => ({ kind: 'raw', header })),
  },
)

const queryKey = fc.constantFrom('format', 'seed', 'peer', 'peers', 'partition', 'x', 'peer', 'peers')
const queryValue = fc.oneof(
  fc.constantFrom('json', 'csv', 'bin', 'tfjs', 'tfjs-weights', 'xml', '', '0', '1', '-1', '2', '4096', '4097', '1e3', '0x10', '1.5', 'NaN', 'Infinity',
    String(MAX_SEED), String(MAX_SEED + 1), 'iid', 'label-skew:2', 'label-skew:0', 'dirichlet:0.001', 'dirichlet:0.5', 'dirichlet:1e9', 'dirichlet:', ' 3 '),
  fc.integer({ min: -10, max: 10_000 }).map(String),
  fc.string({ maxLength: 12 }),
)

/** Mostly `valid`, sometimes anything. */
const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 5, arbitrary: valid as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: nastyValue })

const controlBody = fc.record({
  action: mostly(fc.constantFrom(...CONTROL_ACTIONS)),
  factor: mostly(fc.double({ min: 1, max: 100, noNaN: true })),
  ms: mostly(fc.nat(60_000)),
  savedAt: mostly(fc.nat()),
  role: mostly(fc.constantFrom(...PINNABLE_ROLES)),
  config: fc.oneof({ weight: 2, arbitrary: configInput }, { weight: 1, arbitrary: fc.constantFrom<unknown>({ algorithm: 'ssgd' }, { algorithm: 'dpsgd', lr: 0.1 }) }),
  extra: jsonish,
}, { requiredKeys: ['action'] })

const peerRef: fc.Arbitrary<PeerRef | null> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: fc.nat(1).map((i): PeerRef => ({ kind: 'helper', i })) },
  { weight: 1, arbitrary: fc.oneof(nastyValue, fc.constantFrom('nobody', '', 'x'.repeat(65))).map((value): PeerRef => ({ kind: 'raw', value })) },
)

const body: fc.Arbitrary<HttpCase['body']> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: configInput.map((value) => ({ kind: 'json' as const, value })) },
  {
    weight: 2,
    arbitrary: fc.record({
      room: fc.oneof(fc.constantFrom(...FIXED_ROOMS), fc.constantFrom('bad name', ''), fc.string({ maxLength: 8 })),
      config: configInput, paused: fc.oneof(fc.boolean(), nastyValue), extra: nastyValue,
    }, { requiredKeys: [] }).map((value) => ({ kind: 'json' as const, value })),
  },
  { weight: 4, arbitrary: fc.tuple(controlBody, peerRef).map(([value, peer]) => ({ kind: 'control' as const, value, peer })) },
  { weight: 1, arbitrary: jsonish.map((value) => ({ kind: 'json' as const, value })) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom('{', '{"a":', 'null', '[]', '"x"', '1', 'nul', '{"algorithm":"ssgd",}', '\u0000', ' ', '\ufeff{}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}'),
      fc.string({ maxLength: 40 }),
      hugeString.map((s) => `{"a":"${s}"}`),
      fc.constant(`{"a":"${'x'.repeat(MAX_BODY_BYTES + 10)}"}`),
    ).map((text) => ({ kind: 'text' as const, text })),
  },
)

const anyMethod = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'DELETE', 'HEAD') },
  { weight: 1, arbitrary: fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'TRACE') },
)
const route = (method: string | readonly string[], ...templates: string[]) => fc.tuple(
  typeof method === 'string' ? fc.constant(method) : fc.constantFrom(...method), fc.constantFrom(...templates),
)
/** Each route with the methods it serves, most of the time; any method on any path the rest. */
const methodAndTemplate: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 12, arbitrary: route('POST', '/api/rooms/{room}/control') },
  { weight: 6, arbitrary: route('POST', '/api/rooms') },
  { weight: 3, arbitrary: route(['GET', 'HEAD'], '/api/rooms/{room}', '/api/rooms/{room}/history') },
  { weight: 4, arbitrary: route(['GET', 'GET', 'HEAD'], '/api/rooms/{room}/model', '/api/rooms/{room}/model.json', '/api/rooms/{room}/model.weights.bin') },
  { weight: 4, arbitrary: route(['GET', 'GET', 'HEAD'], '/data/{dataset}/{split}', '/data/{dataset}/{split}.bin') },
  { weight: 2, arbitrary: route('DELETE', '/api/rooms/{room}') },
  { weight: 2, arbitrary: route(['GET', 'HEAD'], '/healthz', '/api/info', '/api/rooms') },
  { weight: 6, arbitrary: fc.tuple(anyMethod, fc.constantFrom(...TEMPLATES)) },
  { weight: 1, arbitrary: fc.tuple(anyMethod, fc.oneof(pathText.map((p) => `/${p}`), pathText.map((p) => `/api/${p}`))) },
)

const controlCase = fc.tuple(controlBody, peerRef).map(([value, peer]): HttpCase['body'] => ({ kind: 'control', value, peer }))
const configCase = configInput.map((value): HttpCase['body'] => ({ kind: 'json', value }))
/** The body a route reads, most of the time (a control action, a config), else any body. */
function bodyFor(method: string, template: string): fc.Arbitrary<HttpCase['body']> {
  if (method === 'POST' && template.endsWith('/control')) return fc.oneof({ weight: 6, arbitrary: controlCase }, { weight: 1, arbitrary: body })
  if (method === 'POST' && template === '/api/rooms') return fc.oneof({ weight: 3, arbitrary: configCase }, { weight: 2, arbitrary: body })
  return fc.oneof({ weight: 3, arbitrary: fc.constant<HttpCase['body']>({ kind: 'none' }) }, { weight: 1, arbitrary: body })
}

export const httpCase: fc.Arbitrary<HttpCase> = methodAndTemplate.chain(([method, template]) => fc.record({
  route: fc.constant<[string, string]>([method, template]),
  room: roomRef,
  dataset: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...DATASETS) }, { weight: 1, arbitrary: fc.constantFrom('cifar', 'MNIST', 'mnist-', 'a') }),
  split: fc.constantFrom('train', 'test', 'val', 'TRAIN'),
  query: fc.array(fc.tuple(queryKey, queryValue), { maxLength: 4 }),
  auth: authSpec,
  contentType: fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    { weight: 2, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '') },
  ),
  body: bodyFor(method, template),
})).map(({ route: [method, template], ...rest }) => ({ method, template, ...rest }))

// ---- running them ----

interface Helpers {
  tokens: Map<string, string>
  volunteers: Socket[]
  /** Which setup address (setupAddress) the maintenance uses now. */
  address: number
}

interface Sent {
  method: string
  path: string
  headers: Record<string, string>
  body: Buffer | null
}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

function send(url: URL, agent: Agent, r: Sent, localAddress?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, method: r.method, path: r.path, headers: r.headers, agent, localAddress,
      timeout: REQUEST_TIMEOUT_MS,
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end(r.body ?? undefined)
  })
}

/** One request; a keep-alive socket the server had already closed is retried once on a fresh one, as any client does. */
async function sendRetrying(url: URL, agent: Agent, r: Sent): Promise<Answer> {
  try {
    return await send(url, agent, r)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
    return send(url, agent, r)
  }
}

function resolveCase(c: HttpCase, helpers: Helpers): Sent {
  const roomText = c.room.kind === 'fixed' ? FIXED_ROOMS[c.room.i] : c.room.text
  let dataset = c.dataset
  let split = c.split
  const query = new URLSearchParams(c.query)
  let template: string = c.template
  // Datasets: whatever the server would load or build is replaced by a cheap, cached request.
  if (template.startsWith('/data/{dataset}/{split}') && (DATASETS as readonly string[]).includes(dataset) && (split === 'train' || split === 'test')) {
    const sharded = query.has('peer') || query.has('peers')
    const pick = Math.abs(c.query.length + dataset.length + split.length)
    if (!sharded || shardWouldBuild(query)) {
      ;[dataset, split] = CHEAP_SPLITS[pick % CHEAP_SPLITS.length]
      if (sharded) {
        for (const k of [...query.keys()]) query.delete(k)
        for (const [k, v] of new URLSearchParams(CHEAP_SHARDS[pick % CHEAP_SHARDS.length])) query.append(k, v)
      }
    }
  }
  template = template.replace('{room}', c.room.kind === 'fixed' ? encodeURIComponent(roomText) : roomText)
    .replace('{dataset}', dataset).replace('{split}', split)
  const qs = query.toString()
  const path = qs ? `${template}?${qs}` : template

  const headers: Record<string, string> = {}
  const ownRoom = c.room.kind === 'fixed' ? roomText : null
  if (c.auth.kind === 'own' && ownRoom) {
    // A room's own token goes with a DELETE only for the deletable room: the others' state must stay.
    const token = helpers.tokens.get(ownRoom)
    if (token && !(c.method === 'DELETE' && ownRoom !== DELETABLE_ROOM)) headers.authorization = `Bearer ${token}`
  } else if (c.auth.kind === 'other') {
    const token = helpers.tokens.get(FIXED_ROOMS[c.auth.i])
    if (token) headers.authorization = `Bearer ${token}`
  } else if (c.auth.kind === 'raw') headers.authorization = c.auth.header
  if (c.contentType !== null) headers['content-type'] = c.contentType

  let text: string | null = null
  if (c.body.kind === 'json') text = JSON.stringify(c.body.value) ?? null
  else if (c.body.kind === 'text') text = c.body.text
  else if (c.body.kind === 'control') {
    const v = { ...c.body.value }
    if (c.body.peer?.kind === 'helper') v.peer = helpers.volunteers[c.body.peer.i]?.id ?? 'gone'
    else if (c.body.peer?.kind === 'raw') v.peer = c.body.peer.value
    text = JSON.stringify(v) ?? null
  }
  const bytes = text === null ? null : Buffer.from(text, 'utf8')
  // Node frames a GET/DELETE/HEAD body only with a length: without one the body would arrive as the next request.
  if (bytes) headers['content-length'] = String(bytes.length)
  return { method: c.method, path, headers, body: bytes }
}

const API = (pathname: string) => pathname === '/healthz' || pathname === '/api' || pathname.startsWith('/api/') || pathname.startsWith('/data/')
const NAMES_FIELD = /^[A-Za-z][\w.[\]-]*:/

/** The route a path reaches, for the outcome counts. */
function routeName(pathname: string | null): string {
  if (pathname === null) return '(bad url)'
  if (!API(pathname)) return '(static)'
  if (pathname.startsWith('/data/')) return '/data/…'
  const m = /^\/api\/rooms\/[^/]+(\/(control|history|model|model\.json|model\.weights\.bin))?$/.exec(pathname)
  if (m) return `/api/rooms/:room${m[1] ?? ''}`
  return ['/healthz', '/api/info', '/api/rooms'].includes(pathname) ? pathname : '/api/(other)'
}

/** What is wrong with this answer to this request, or null. */
export function checkAnswer(sent: Sent, a: Answer, tally: Tally): string | null {
  let pathname: string | null
  try {
    pathname = new URL(sent.path, 'http://localhost').pathname
  } catch {
    pathname = null
  }
  const api = pathname !== null && API(pathname)
  tally.add(`${sent.method} ${routeName(pathname)} ${a.status}`)
  if (a.status >= 500) return `status ${a.status}`
  const type = String(a.headers['content-type'] ?? '')
  const isJson = type.startsWith('application/json')
  if (pathname === null) {
    // The server cannot parse the URL at all (server.ts): a plain 400 before any route.
    return a.status === 400 ? null : `an unparsable URL answered ${a.status}`
  }
  if (sent.method === 'HEAD') return null
  // Decoded only where it is read: dataset and model bodies are megabytes of binary.
  const text = isJson || (api && a.status >= 400) ? a.body.toString('utf8') : ''
  if (isJson && a.status < 400) {
    if (sent.path.includes('format=') || a.headers['content-disposition']) return null
    try {
      const parsed: unknown = JSON.parse(text)
      if (pathname === '/healthz' && !healthResponseSchema.safeParse(parsed).success) return `/healthz body does not match its schema: ${show(parsed)}`
    } catch {
      return `a ${a.status} JSON body that does not parse: ${show(text, 200)}`
    }
    return null
  }
  if (!api || a.status < 400) return null
  if (!isJson) return `an API ${a.status} that is not JSON (${type}): ${show(text, 200)}`
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return `an API ${a.status} body that does not parse: ${show(text, 200)}`
  }
  const e = errorBodySchema.safeParse(parsed)
  if (!e.success) return `an API ${a.status} body that is not { error, field? }: ${show(parsed)}`
  if (e.data.error.trim() === '') return `an API ${a.status} with an empty error: ${show(parsed)}`
  if (a.status === 400 && !e.data.field && !NAMES_FIELD.test(e.data.error)) return `a 400 that names no field: ${show(parsed)}`
  if (e.data.field === '') return `an API ${a.status} with an empty field: ${show(parsed)}`
  return null
}

// ---- the runner's own rooms and volunteers ----

async function setupRequest(base: URL, agent: Agent, address: string, method: string, path: string, token: string | null, bodyValue: unknown): Promise<Answer> {
  const text = bodyValue === undefined ? null : JSON.stringify(bodyValue)
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (text !== null) headers['content-length'] = String(Buffer.byteLength(text))
  if (token) headers.authorization = `Bearer ${token}`
  return send(base, agent, { method, path, headers, body: text === null ? null : Buffer.from(text) }, address)
}

async function volunteer(url: string, room: string): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve())
    s.once('connect_error', reject)
  })
  const ack = (await s.timeout(10_000).emitWithAck('join', { v: 1, room, role: 'volunteer' })) as { ok: boolean; message?: string }
  if (!ack.ok) {
    s.disconnect()
    throw new Error(`helper volunteer could not join ${room}: ${ack.message}`)
  }
  s.emit('ready', { v: 1 })
  return s
}

/** Puts back what the cases may have taken away: the fixed rooms, the stable room's volunteers and its checkpoint. */
async function maintain(server: FuzzServer, agent: Agent, helpers: Helpers, tally: Tally): Promise<void> {
  const base = new URL(server.url)
  const registry = server.server.registry
  for (const name of FIXED_ROOMS) {
    if (registry.get(name)) continue
    let r = await setupRequest(base, agent, setupAddress(helpers.address), 'POST', '/api/rooms', null, { room: name, config: { algorithm: 'dpsgd' } })
    if (r.status === 429) r = await setupRequest(base, agent, setupAddress(++helpers.address), 'POST', '/api/rooms', null, { room: name, config: { algorithm: 'dpsgd' } })
    if (r.status !== 201) {
      tally.add(`setup:create ${r.status}`)
      continue
    }
    helpers.tokens.set(name, (JSON.parse(r.body.toString()) as { hostToken: string }).hostToken)
  }
  const room = registry.get(STABLE_ROOM)
  if (!room) return
  for (let i = 0; i < 2; i++) {
    const s = helpers.volunteers[i]
    if (s?.connected && s.id && room.roster.includes(s.id)) continue
    s?.disconnect()
    try {
      helpers.volunteers[i] = await volunteer(server.url, STABLE_ROOM)
    } catch (err) {
      tally.add(`setup:volunteer ${String(err).slice(0, 60)}`)
    }
  }
  if (room.checkpoint) return
  // The room's model, all zeros, from each helper: the room's writer's upload becomes the checkpoint.
  const config: RoomConfig = room.config
  const layout = modelLayout(config.model, config.dataset)
  if (!layout.ok) return
  const params = new Uint8Array(layout.paramCount * 4)
  await Promise.all(helpers.volunteers.filter((s) => s?.connected).map(async (s) => {
    s.emit('checkpoint', { v: 1, step: 1, schemaHash: layout.schemaHash, params })
    // A marker on the same ordered socket: the upload has been handled once it answers.
    await s.timeout(10_000).emitWithAck('signal', null).catch(() => undefined)
  }))
  tally.add(room.checkpoint ? 'setup:checkpoint' : 'setup:checkpoint refused')
}

export async function fuzzHttp(opts: FuzzOptions): Promise<TargetResult> {
  const tally = new Tally()
  const proc = trackProcessFailures()
  const server = await startFuzzServer()
  const base = new URL(server.url)
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  const setupAgent = new Agent({ keepAlive: true, maxSockets: 1 })
  const helpers: Helpers = { tokens: new Map(), volunteers: [], address: 0 }
  let cases = 0
  const t0 = performance.now()
  await maintain(server, setupAgent, helpers, tally)
  const property = fc.asyncProperty(httpCase, async (c) => {
    if (++cases % MAINTAIN_EVERY === 0) await maintain(server, setupAgent, helpers, tally)
    const sent = resolveCase(c, helpers)
    let a: Answer
    try {
      a = await sendRetrying(base, agent, sent)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // An oversized body: the server answers 413 and closes while the rest is still being written.
      if ((sent.body?.length ?? 0) > MAX_BODY_BYTES && (code === 'ECONNRESET' || code === 'EPIPE')) return void tally.add(`oversized: ${code}`)
      throw new Error(`${sent.method} ${sent.path}: no answer: ${String(err)}`)
    }
    // A room made by a fuzzed POST with a fixed name: its token is now the one to know.
    if (a.status === 201 && sent.method === 'POST') {
      try {
        const made = JSON.parse(a.body.toString()) as { room?: string; hostToken?: string }
        if (made.room && made.hostToken && (FIXED_ROOMS as readonly string[]).includes(made.room)) helpers.tokens.set(made.room, made.hostToken)
      } catch { /* checked below */ }
    }
    if (c.body.kind === 'control' && sent.method === 'POST' && c.template.endsWith('/control')) {
      const action = c.body.value.action
      tally.add(`control ${(CONTROL_ACTIONS as readonly unknown[]).includes(action) ? String(action) : '(invalid action)'} ${a.status}`)
    }
    const problem = checkAnswer(sent, a, tally)
    if (problem) {
      throw new Error(`${problem}\n  request: ${sent.method} ${sent.path} ${show(sent.headers)} body ${sent.body ? show(sent.body.toString('utf8'), 400) : '(none)'}`)
    }
    if (server.failures.length) throw new Error(`the server logged a failure:\n  ${server.failures.join('\n  ')}`)
  })
  const details = await fc.check(property, checkParams(opts, false))
  const seconds = (performance.now() - t0) / 1000
  const problems: string[] = []
  const health = await healthProblem(server.url)
  if (health) problems.push(health)
  tally.add(`rooms at the end: ${server.server.registry.list().length}`)
  for (const s of helpers.volunteers) s?.disconnect()
  agent.destroy()
  setupAgent.destroy()
  await server.close()
  proc.stop()
  problems.push(...server.failures.map((f) => `server log: ${f}`), ...proc.failures)
  return toResult('http-routes', details, seconds, tally, problems.length ? problems.join('\n') : null)
}
