import { createHash } from 'node:crypto'
import { gzip } from 'node:zlib'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { DATASETS, MAX_SEED, TEST_SUBSET_MAX, TEST_SUBSET_MIN, parseRoomConfig, partitionSchema, publicConfig, type DatasetName } from '../shared/config'
import { PROTOCOL_VERSION } from '../shared/protocol/version'
import { roomNameSchema } from '../shared/protocol/signaling'
import { KeyedBuckets } from '../shared/rate-limit'
import type { HistoryResponse } from '../shared/protocol/history'
import {
  controlRequestSchema, type CheckpointJson, type ControlResponse, type CreatedRoomResponse, type ErrorBody,
  type HealthResponse, type InfoResponse, type RoomList, type RoomResponse, type TfjsCheckpointMetadata,
} from '../shared/protocol/http'
import { bearerToken, hashToken, newHostToken, tokenMatches } from './auth'
import { clientAddress, type RoomBus } from './handlers'
import { historyToCsv } from './history'
import { tfjsArtifact } from '../shared/model-shapes'
import type { RoomOwnership } from './ownership'
import type { PublicOrigin } from './public-origin'
import type { Room, RoomRegistry } from './rooms'

/**
 * The HTTP automation API (used by the dashboard, tests and benchmarks). Every answer is JSON
 * `{ error, field? }` on failure; host controls need `Authorization: Bearer <hostToken>`. Bodies
 * follow shared/protocol/http.ts: each is checked against its type there with `satisfies`.
 */

/** Room configs are a few hundred bytes; anything near this is not a config. */
export const MAX_BODY_BYTES = 64 * 1024

export interface ApiContext {
  rooms: RoomRegistry
  bus: RoomBus
  log: (msg: string) => void
  /** Loads a dataset's compact binary (signaling-server/datasets.ts). */
  getDatasetBinary: (name: DatasetName, split: 'train' | 'test', subset?: number) => Promise<Uint8Array>
  /** One peer's shard (`?peer=&peers=&partition=&seed=`); absent → shard queries get 404. */
  getShardBinary?: (name: DatasetName, split: 'train' | 'test', req: ShardQuery) => Promise<Uint8Array>
  /** Whether a shard is cached already (serving it builds nothing); absent → every shard counts as new. */
  hasShard?: (name: DatasetName, split: 'train' | 'test', req: ShardQuery) => boolean
  /** The origin students can open, for links in answers to `req` (public-origin.ts). */
  publicOrigin: (req: IncomingMessage) => PublicOrigin
  /** How the server does TLS, for the host page's notice (tls.ts); absent: 'none'. */
  tls?: 'self-signed' | 'certificate' | 'none'
  /** Which process serves which room (ownership.ts); absent: this one serves every room. */
  ownership?: RoomOwnership
}

export interface ShardQuery {
  peerIndex: number
  peerCount: number
  partition: string
  seed: number
}

/**
 * Building a shard takes the server's CPU (a whole split's shuffle and copy: ~2 s for MNIST's
 * 60,000 images, in one task). New shards cost each client address from a budget counted in
 * whole splits (a 1-of-N shard costs 1/N): a whole classroom's shards are about one split, a
 * flood of seeds is cut off after SHARD_BUILD_BURST splits, then one every 10 s. Cached shards
 * are free.
 */
export const SHARD_BUILD_BURST = 8
export const SHARD_BUILDS_PER_SEC = 0.1
const shardBuilds = new KeyedBuckets(SHARD_BUILD_BURST, SHARD_BUILDS_PER_SEC)

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message)
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.statusCode = status
  res.setHeader('Content-Type', 'application/json; charset=utf-8')
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('Content-Length', Buffer.byteLength(text))
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body: larger than ${MAX_BODY_BYTES} bytes`, 'body')
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    throw new HttpError(400, 'body: not valid JSON', 'body')
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function zodField(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0]
  const field = issue?.path.join('.') || 'body'
  return { field, message: `${field}: ${issue?.message ?? 'invalid'}` }
}

/** Where students join, watch and look at the class screen for a room (absolute URLs). */
function roomLinks(base: string, room: Room) {
  const code = encodeURIComponent(room.code)
  return { joinUrl: `${base}/?room=${code}`, dashboardUrl: `${base}/room/${code}`, projectorUrl: `${base}/projector/${code}` }
}

/**
 * With several processes (ownership.ts): makes this one serve the room of a /api/rooms/:room
 * request. A room reached by its join code is redirected to its name (the balancer routes by
 * the URL's room, so a room is always asked for under one key). True when answered here.
 */
async function claimForRequest(res: ServerResponse, raw: string, rest: string, query: URLSearchParams, ownership: RoomOwnership): Promise<boolean> {
  let key: string
  try {
    key = decodeURIComponent(raw)
  } catch {
    throw new HttpError(400, 'room: bad URL encoding', 'room')
  }
  const c = await ownership.claim(key, key)
  if (c.ok) return false
  if (c.code === 'busy') {
    res.setHeader('Retry-After', String(Math.ceil(c.retryAfterMs / 1000)))
    throw new HttpError(503, c.message)
  }
  if (c.code === 'exists') throw new HttpError(409, c.message, 'room')
  const qs = query.toString()
  // 307 keeps the method and body: a host's POST …/control by code lands on the room's name.
  res.statusCode = 307
  res.setHeader('Location', `/api/rooms/${encodeURIComponent(c.room)}${rest}${qs ? `?${qs}` : ''}`)
  res.setHeader('Cache-Control', 'no-store')
  res.end()
  return true
}

function findRoom(rooms: RoomRegistry, raw: string): Room {
  let name: string
  try {
    name = decodeURIComponent(raw)
  } catch {
    throw new HttpError(400, 'room: bad URL encoding', 'room')
  }
  const room = rooms.get(name)
  if (!room) throw new HttpError(404, `room '${name}' not found`, 'room')
  return room
}

/** Handles /healthz, /api/… and /data/…; returns false for any other path (static files). */
export async function handleApi(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams, ctx: ApiContext): Promise<boolean> {
  const isApi = pathname === '/healthz' || pathname.startsWith('/api/') || pathname === '/api' || pathname.startsWith('/data/')
  if (!isApi) return false
  try {
    await route(req, res, pathname, query, ctx)
  } catch (err) {
    if (err instanceof HttpError) {
      // The rest of an oversize body is still on the wire: don't let the client reuse this connection.
      if (err.status === 413) res.setHeader('Connection', 'close')
      json(res, err.status, { error: err.message, ...(err.field !== undefined ? { field: err.field } : {}) } satisfies ErrorBody)
    }
    else {
      ctx.log(`${req.method} ${pathname} failed: ${err instanceof Error ? err.stack : String(err)}`)
      if (!res.headersSent) json(res, 500, { error: 'internal error' } satisfies ErrorBody)
      else res.destroy()
    }
  }
  return true
}

async function route(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams, ctx: ApiContext): Promise<void> {
  const method = req.method ?? 'GET'
  const get = method === 'GET' || method === 'HEAD'
  const { rooms } = ctx
  let m: RegExpExecArray | null

  if (ctx.ownership?.clustered && (m = /^\/api\/rooms\/([^/]+)(\/.*)?$/.exec(pathname))) {
    if (await claimForRequest(res, m[1], m[2] ?? '', query, ctx.ownership)) return
  }

  if (pathname === '/healthz' && get) {
    const ok = ctx.ownership?.healthy() ?? true
    return json(res, ok ? 200 : 503, { ok, protocol: PROTOCOL_VERSION, rooms: rooms.list().length } satisfies HealthResponse)
  }

  if ((m = /^\/data\/([a-z-]+)\/(train|test)(?:\.bin)?$/.exec(pathname)) && get)
    return serveDataset(req, res, m[1], m[2] as 'train' | 'test', query, ctx)

  if (pathname === '/api/info' && get) {
    const o = ctx.publicOrigin(req)
    return json(res, 200, { protocol: PROTOCOL_VERSION, publicUrl: o.url, publicUrlSource: o.source, localOnly: o.localOnly, tls: ctx.tls ?? 'none' } satisfies InfoResponse)
  }

  if (pathname === '/api/rooms' && get) return json(res, 200, { rooms: rooms.list().map((r) => rooms.summary(r)) } satisfies RoomList)
  if (pathname === '/api/rooms' && method === 'POST') return createRoom(req, res, ctx)

  if ((m = /^\/api\/rooms\/([^/]+)$/.exec(pathname)) && get) {
    const room = findRoom(rooms, m[1])
    const o = ctx.publicOrigin(req)
    // Links live here, not in rooms.view(): they depend on who asks (the Host header).
    return json(res, 200, { ...rooms.view(room), ...roomLinks(o.url, room), publicUrl: o.url, localOnly: o.localOnly } satisfies RoomResponse)
  }

  if ((m = /^\/api\/rooms\/([^/]+)\/control$/.exec(pathname)) && method === 'POST') return control(req, res, findRoom(rooms, m[1]), ctx)
  if ((m = /^\/api\/rooms\/([^/]+)$/.exec(pathname)) && method === 'DELETE') return deleteRoom(req, res, findRoom(rooms, m[1]), ctx)

  if ((m = /^\/api\/rooms\/([^/]+)\/history$/.exec(pathname)) && get)
    return serveHistory(res, findRoom(rooms, m[1]), query.get('format') ?? 'json')

  // tf.loadLayersModel(`${server}/api/rooms/X/model.json`) fetches the manifest's
  // 'model.weights.bin' relative to that URL (query kept), i.e. the route below.
  if ((m = /^\/api\/rooms\/([^/]+)\/model\.json$/.exec(pathname)) && get) {
    const room = findRoom(rooms, m[1])
    return serveTfjs(res, room, needCheckpoint(room), 'model.json', method === 'HEAD')
  }
  if ((m = /^\/api\/rooms\/([^/]+)\/model\.weights\.bin$/.exec(pathname)) && get) {
    const room = findRoom(rooms, m[1])
    return serveWeights(res, needCheckpoint(room), 'model.weights.bin', method === 'HEAD')
  }

  if ((m = /^\/api\/rooms\/([^/]+)\/model$/.exec(pathname)) && get) {
    const room = findRoom(rooms, m[1])
    const cp = needCheckpoint(room)
    const base = `tabswarm-${room.name}-run${cp.run}-step${cp.step}`
    const format = query.get('format')
    if (format === 'bin') {
      res.setHeader('X-Tabswarm-Schema-Hash', cp.schemaHash)
      return serveWeights(res, cp, `${base}.bin`, method === 'HEAD')
    }
    if (format === 'tfjs') return serveTfjs(res, room, cp, `${base}.model.json`, method === 'HEAD')
    if (format === 'tfjs-weights') return serveWeights(res, cp, `${base}.weights.bin`, method === 'HEAD')
    if (format !== null && format !== 'json') throw new HttpError(400, "format: must be 'json', 'bin', 'tfjs' or 'tfjs-weights'", 'format')
    res.setHeader('Content-Disposition', `attachment; filename="${base}.json"`)
    return json(res, 200, {
      format: 'tabswarm-checkpoint', version: 1, room: room.name, run: cp.run, step: cp.step,
      schemaHash: cp.schemaHash, savedAt: cp.savedAt, config: publicConfig(room.config), byteLength: cp.params.byteLength,
      /** The model's parameters, little-endian float32 in shared/model-shapes.ts order, base64. */
      weights: Buffer.from(cp.params.buffer, cp.params.byteOffset, cp.params.byteLength).toString('base64'),
    } satisfies CheckpointJson)
  }

  if (pathname.startsWith('/api/') || pathname.startsWith('/data/')) {
    const known = pathname === '/api/info' || /^\/api\/rooms(\/[^/]+(\/(control|history|model|model\.json|model\.weights\.bin))?)?$/.test(pathname)
    throw new HttpError(known ? 405 : 404, known ? `${method} is not allowed on ${pathname}` : `no such endpoint: ${pathname}`)
  }
  throw new HttpError(404, `no such endpoint: ${pathname}`)
}

/** Every run's history, as CSV or JSON (a download either way: the dashboard's export buttons). */
function serveHistory(res: ServerResponse, room: Room, format: string): void {
  if (format === 'csv') {
    const csv = historyToCsv(room.runs)
    res.statusCode = 200
    res.setHeader('Content-Type', 'text/csv; charset=utf-8')
    res.setHeader('Content-Disposition', `attachment; filename="tabswarm-${room.name}-history.csv"`)
    res.setHeader('Cache-Control', 'no-store')
    return void res.end(csv)
  }
  if (format !== 'json') throw new HttpError(400, "format: must be 'json' or 'csv'", 'format')
  res.setHeader('Content-Disposition', `attachment; filename="tabswarm-${room.name}-history.json"`)
  json(res, 200, {
    room: room.name, code: room.code, currentRun: room.run,
    runs: room.runs.map((r) => ({ run: r.run, config: publicConfig(r.config), started: r.started, points: r.points, diverged: r.diverged })),
  } satisfies HistoryResponse)
}

type RoomCheckpoint = NonNullable<Room['checkpoint']>

function needCheckpoint(room: Room): RoomCheckpoint {
  if (!room.checkpoint) throw new HttpError(404, `room '${room.name}' has no checkpoint yet`)
  return room.checkpoint
}

/** The raw float32 parameters (the weights file of the TensorFlow.js model, and `?format=bin`). */
function serveWeights(res: ServerResponse, cp: RoomCheckpoint, filename: string, head: boolean): void {
  res.statusCode = 200
  res.setHeader('Content-Type', 'application/octet-stream')
  res.setHeader('Content-Length', cp.params.byteLength)
  res.setHeader('Content-Disposition', `attachment; filename="${filename}"`)
  res.setHeader('X-Tabswarm-Step', String(cp.step))
  res.setHeader('Cache-Control', 'no-store')
  res.end(head ? undefined : Buffer.from(cp.params.buffer, cp.params.byteOffset, cp.params.byteLength))
}

/**
 * The checkpoint as a TensorFlow.js layers model ("download the trained model (tfjs
 * format)"). `model.json` is the standard pair with `model.weights.bin` (tf.loadLayersModel
 * on its URL); `?format=tfjs` is the one-file download the dashboard links to: the same JSON
 * with the weights inline, for `tf.loadLayersModel(tf.io.fromMemory(...))`.
 */
function serveTfjs(res: ServerResponse, room: Room, cp: RoomCheckpoint, filename: string, head: boolean): void {
  const made = tfjsArtifact({
    model: room.config.model, dataset: room.config.dataset, params: cp.params, weightsPath: 'model.weights.bin',
    generatedBy: `tabswarm (protocol ${PROTOCOL_VERSION})`, embedWeights: filename !== 'model.json',
    metadata: { room: room.name, run: cp.run, step: cp.step, schemaHash: cp.schemaHash, algorithm: room.config.algorithm } satisfies TfjsCheckpointMetadata,
  })
  if (!made.ok) throw new HttpError(409, made.error)
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('X-Tabswarm-Step', String(cp.step))
  if (filename !== 'model.json') res.setHeader('Content-Disposition', `attachment; filename="${filename}"`)
  if (head) {
    res.statusCode = 200
    res.setHeader('Content-Type', 'application/json; charset=utf-8')
    return void res.end()
  }
  json(res, 200, made.artifact)
}

async function createRoom(req: IncomingMessage, res: ServerResponse, ctx: ApiContext): Promise<void> {
  const body = await readJson(req)
  // Either a bare config, or { room?: name, config?: config, paused?: boolean }.
  const wrapped = isPlainObject(body) && ('config' in body || 'room' in body || 'paused' in body)
  let name: string | undefined
  if (wrapped && body.room !== undefined) {
    const r = roomNameSchema.safeParse(body.room)
    // The schema's message already names the field ('room: 1–64 letters…').
    if (!r.success) throw new HttpError(400, r.error.issues[0]?.message ?? 'room: invalid', 'room')
    name = r.data
  }
  let paused = false
  if (wrapped) {
    const extra = Object.keys(body).find((k) => k !== 'room' && k !== 'config' && k !== 'paused')
    if (extra) throw new HttpError(400, `${extra}: unknown field (send { room?, config?, paused? } or a bare config)`, extra)
    if (body.paused !== undefined && typeof body.paused !== 'boolean') throw new HttpError(400, 'paused: must be true or false', 'paused')
    paused = body.paused === true
  }
  const parsed = parseRoomConfig(wrapped ? body.config : body)
  if (!parsed.ok) throw new HttpError(400, parsed.error, parsed.field)
  const token = newHostToken()
  if (!ctx.bus.mayCreateRoom(req.socket.remoteAddress ?? 'unknown'))
    throw new HttpError(429, 'too many new rooms from this address; try again in a minute')
  let code: string | undefined
  if (ctx.ownership?.clustered) {
    // The room's lease comes first: its first writes to the store are fenced by it.
    const pickCode = name === undefined
    // A fresh code is unique on this process; another process may hold a room under it (rare):
    // then another code.
    for (let attempt = 0; ; attempt++) {
      if (pickCode) name = code = ctx.rooms.newCode()
      const c = await ctx.ownership.claim(name!, name!, { create: true, fresh: true })
      if (c.ok) break
      if (c.code === 'exists' && pickCode && attempt < 3) continue
      throw new HttpError(c.code === 'busy' ? 503 : 409, c.code === 'busy' ? c.message : `room: '${name}' already exists`, 'room')
    }
  }
  const created = ctx.rooms.create({ name, code, config: parsed.config, tokenHash: hashToken(token), paused })
  if (!created.ok) throw new HttpError(created.code === 'exists' ? 409 : 503, created.message, 'room')
  const room = created.room
  const o = ctx.publicOrigin(req)
  ctx.log(`room '${room.name}' created (code ${room.code}, ${room.config.algorithm}/${room.config.topology})`)
  json(res, 201, {
    room: room.name,
    code: room.code,
    hostToken: token,
    ...roomLinks(o.url, room),
    localOnly: o.localOnly,
    config: room.config,
    paused: room.paused,
  } satisfies CreatedRoomResponse)
}

/** Only the room's host token passes (401 without one, 403 with another room's). */
function requireHost(req: IncomingMessage, res: ServerResponse, room: Room): void {
  const token = bearerToken(req.headers.authorization)
  if (!token) {
    res.setHeader('WWW-Authenticate', 'Bearer')
    throw new HttpError(401, 'Authorization: send "Bearer <hostToken>" (returned by POST /api/rooms)', 'authorization')
  }
  if (!room.tokenHash || !tokenMatches(room.tokenHash, token))
    throw new HttpError(403, `authorization: this token does not control room '${room.name}'`, 'authorization')
}

/** DELETE /api/rooms/:room (host): everyone in it is told and disconnected, then it is gone with its history. */
function deleteRoom(req: IncomingMessage, res: ServerResponse, room: Room, ctx: ApiContext): void {
  requireHost(req, res, room)
  for (const id of [...room.peers.keys()]) {
    ctx.rooms.kick(room, id)
    ctx.bus.evict(id, 'room-deleted', `the host deleted room '${room.name}'`, true)
  }
  ctx.rooms.remove(room)
  ctx.log(`room '${room.name}' deleted by its host`)
  json(res, 200, { ok: true, room: room.name, deleted: true })
}

async function control(req: IncomingMessage, res: ServerResponse, room: Room, ctx: ApiContext): Promise<void> {
  requireHost(req, res, room)
  ctx.rooms.touch(room)
  const body = await readJson(req)
  const r = controlRequestSchema.safeParse(body)
  if (!r.success) {
    const { field, message } = zodField(r.error)
    throw new HttpError(400, message, field)
  }
  const c = r.data
  const { rooms, bus } = ctx
  const needPeer = (): string => {
    if (!c.peer) throw new HttpError(400, `peer: required for action '${c.action}'`, 'peer')
    if (!room.roster.includes(c.peer)) throw new HttpError(404, `peer: '${c.peer}' is not in room '${room.name}'`, 'peer')
    return c.peer
  }
  const v = PROTOCOL_VERSION
  switch (c.action) {
    case 'start':
    case 'resume':
    case 'pause':
      rooms.setPaused(room, c.action === 'pause')
      bus.broadcastMembership(room)
      break
    case 'reset':
      rooms.startNewRun(room)
      bus.broadcastMembership(room)
      break
    case 'new-run': {
      let config = room.config
      if (c.config !== undefined) {
        const parsed = parseRoomConfig(c.config)
        if (!parsed.ok) throw new HttpError(400, `config.${parsed.error}`, parsed.field ? `config.${parsed.field}` : 'config')
        config = parsed.config
      }
      rooms.startNewRun(room, config)
      bus.broadcastMembership(room)
      break
    }
    case 'kick': {
      const peer = needPeer()
      rooms.kick(room, peer)
      bus.evict(peer, 'kicked', 'the host removed this peer from the room', true)
      bus.broadcastMembership(room)
      break
    }
    case 'slow': {
      const peer = needPeer()
      if (c.factor === undefined) throw new HttpError(400, "factor: required for action 'slow' (1–100)", 'factor')
      bus.command(peer, { v, type: 'slow', factor: c.factor })
      break
    }
    case 'latency': {
      const peer = needPeer()
      if (c.ms === undefined) throw new HttpError(400, "ms: required for action 'latency' (0–60000)", 'ms')
      bus.command(peer, { v, type: 'latency', ms: c.ms })
      break
    }
    case 'disconnect':
      bus.command(needPeer(), { v, type: 'disconnect' })
      break
    case 'rollback': {
      const r = rooms.rollback(room, c.savedAt)
      if (!r.ok) throw new HttpError(404, r.message, 'savedAt')
      // Every volunteer, pending ones too: whoever trains next starts from the rolled-back model.
      for (const p of room.peers.values()) {
        if (p.role === 'volunteer') bus.command(p.id, { v, type: 'restore-checkpoint', step: r.checkpoint.step, savedAt: r.checkpoint.savedAt })
      }
      bus.pushRoomState(room)
      break
    }
    case 'pin': {
      if (c.role === undefined) throw new HttpError(400, "role: required for action 'pin' ('ps' or 'writer')", 'role')
      const r = rooms.pin(room, c.role, c.peer ?? null)
      if (!r.ok) throw new HttpError(r.code === 'unknown-peer' ? 404 : 400, r.message, r.code === 'unknown-peer' ? 'peer' : 'role')
      bus.broadcastMembership(room)
      break
    }
    default: {
      const never: never = c.action
      throw new HttpError(400, `action: unknown '${String(never)}'`, 'action')
    }
  }
  ctx.log(`room '${room.name}': host ${c.action}${c.peer ? ` ${c.peer}` : ''}`)
  json(res, 200, { ok: true, action: c.action, run: room.run, paused: room.paused, epoch: room.epoch, config: room.config } satisfies ControlResponse)
}

// ---- datasets ----

const datasetCache = new Map<string, Promise<{ bytes: Uint8Array; etag: string }>>()

const shardQuerySchema = z.object({
  peer: z.coerce.number().int().min(0),
  peers: z.coerce.number().int().min(1).max(4096),
  partition: partitionSchema.default('iid'),
  // What a room's seed can be: each seed is another shard to build and cache.
  seed: z.coerce.number().int().min(0).max(MAX_SEED).default(0),
})

/** `?subset=N`: a room's test subset (config testSubset), the only examples its tabs evaluate on. */
const subsetQuerySchema = z.coerce.number().int().min(TEST_SUBSET_MIN).max(TEST_SUBSET_MAX)

/** Bounded: shards are requested once per peer, whole splits a handful of times. */
const DATASET_CACHE_ENTRIES = 64

async function serveDataset(req: IncomingMessage, res: ServerResponse, dataset: string, split: 'train' | 'test', query: URLSearchParams, ctx: ApiContext): Promise<void> {
  if (!(DATASETS as readonly string[]).includes(dataset))
    throw new HttpError(404, `dataset: '${dataset}' is not one of ${DATASETS.join(', ')}`, 'dataset')
  const name = dataset as DatasetName
  const sharded = query.has('peer') || query.has('peers')
  let load: () => Promise<Uint8Array>
  let key = `${dataset}/${split}`
  let whole = !sharded
  if (sharded) {
    const q = shardQuerySchema.safeParse(Object.fromEntries(query))
    if (!q.success) {
      const { field, message } = zodField(q.error)
      throw new HttpError(400, message, field)
    }
    if (q.data.peer >= q.data.peers) throw new HttpError(400, 'peer: must be < peers', 'peer')
    const getShard = ctx.getShardBinary
    if (!getShard) throw new HttpError(404, 'this server does not serve shards')
    const sq: ShardQuery = { peerIndex: q.data.peer, peerCount: q.data.peers, partition: q.data.partition, seed: q.data.seed }
    key += `/${sq.partition}/${sq.seed}/${sq.peerCount}/${sq.peerIndex}`
    const address = clientAddress(req.socket.remoteAddress ?? 'unknown')
    if (!ctx.hasShard?.(name, split, sq) && !shardBuilds.take(address, performance.now(), 1 / sq.peerCount))
      throw new HttpError(429, `seed: too many new data shards from this address (a whole split's worth every ${1 / SHARD_BUILDS_PER_SEC} s); try again shortly`, 'seed')
    load = () => getShard(name, split, sq)
  } else if (query.has('subset')) {
    const n = subsetQuerySchema.safeParse(query.get('subset'))
    if (!n.success) throw new HttpError(400, `subset: ${n.error.issues[0].message}`, 'subset')
    if (split !== 'test') throw new HttpError(400, 'subset: only the test split has one', 'subset')
    key += `?subset=${n.data}`
    whole = false
    load = () => ctx.getDatasetBinary(name, split, n.data)
  } else load = () => ctx.getDatasetBinary(name, split)
  // Whole splits (a handful) are kept here with their etag; shards and test subsets only in
  // datasets.ts's bounded caches, so a flood of seeds or sizes cannot pin their bytes here as well.
  let entry = datasetCache.get(key)
  if (!entry) {
    if (datasetCache.size >= DATASET_CACHE_ENTRIES) datasetCache.delete(datasetCache.keys().next().value as string)
    entry = load().then((bytes) => ({
      bytes, etag: `"${createHash('sha1').update(bytes).digest('hex')}"`,
    }))
    if (whole) datasetCache.set(key, entry)
    // A failed load (e.g. a missing package) must not be cached forever.
    entry.catch(() => datasetCache.delete(key))
  }
  let data: { bytes: Uint8Array; etag: string }
  try {
    data = await entry
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    ctx.log(`dataset ${key} failed to load: ${message}`)
    if (sharded) throw new HttpError(400, `shard: ${message}`)
    throw new HttpError(503, `dataset '${key}' is unavailable on this server`)
  }
  // Images are mostly zero pixels: gzip sends an MNIST shard in about a fifth of its bytes, and
  // the datasets are most of a fresh tab's download (docs/benchmarks.md "Page loads").
  const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) && data.bytes.byteLength > 1024
  // Each encoding is its own representation with its own validator.
  const etag = gz ? `${data.etag.slice(0, -1)}-gz"` : data.etag
  res.setHeader('ETag', etag)
  res.setHeader('Vary', 'Accept-Encoding')
  // Same name → same bytes for the life of the package version; revalidate daily via ETag.
  res.setHeader('Cache-Control', 'public, max-age=86400')
  if (req.headers['if-none-match'] === etag) {
    res.statusCode = 304
    return void res.end()
  }
  res.setHeader('Content-Type', 'application/octet-stream')
  // Content-Length is the encoded size; progress bars need the decoded one.
  res.setHeader('X-Decoded-Length', String(data.bytes.byteLength))
  let body = Buffer.from(data.bytes.buffer, data.bytes.byteOffset, data.bytes.byteLength)
  if (gz) {
    body = await gzipped(data.etag, body)
    res.setHeader('Content-Encoding', 'gzip')
  }
  res.statusCode = 200
  res.setHeader('Content-Length', body.byteLength)
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** gzip variants of served datasets by their identity etag, at most GZIP_CACHE_BYTES (oldest out first). */
const gzipCache = new Map<string, Buffer>()
let gzipCacheBytes = 0
const GZIP_CACHE_BYTES = 96 * 1024 * 1024
/** Compressions in flight, so a class opening the page at once compresses each shard once. */
const gzipping = new Map<string, Promise<Buffer>>()

function gzipped(etag: string, bytes: Buffer): Promise<Buffer> {
  const hit = gzipCache.get(etag)
  if (hit) return Promise.resolve(hit)
  const running = gzipping.get(etag)
  if (running) return running
  // Level 6 on zlib's thread pool, off the event loop: ~0.5 s for a 12 MB shard on a loaded core,
  // once per shard (cached); MNIST shrinks 4.8×, Fashion-MNIST 1.8×.
  const p = new Promise<Buffer>((resolve, reject) => gzip(bytes, { level: 6 }, (err, out) => (err ? reject(err) : resolve(out))))
    .then((out) => {
      if (out.byteLength <= GZIP_CACHE_BYTES) {
        gzipCache.set(etag, out)
        gzipCacheBytes += out.byteLength
        for (const [k, v] of gzipCache) {
          if (gzipCacheBytes <= GZIP_CACHE_BYTES) break
          gzipCache.delete(k)
          gzipCacheBytes -= v.byteLength
        }
      }
      return out
    })
    .finally(() => gzipping.delete(etag))
  gzipping.set(etag, p)
  return p
}
