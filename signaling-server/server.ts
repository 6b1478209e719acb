import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import type { DatasetName } from '../shared/config'
import { getDatasetBinary as datasetBinary, getShardBinary as shardBinary, hasShard as shardCached } from './datasets'
import { attachHandlers, type RoomBus, type SignalingServer } from './handlers'
import { handleApi, type ShardQuery } from './http-api'
import { LocalOwnership, RedisOwnership, processToken, type RoomOwnership } from './ownership'
import { openStore } from './persistence'
import { redisStore } from './redis-store'
import { lanAddresses, lanOrigin, resolvePublicOrigin } from './public-origin'
import { CHECKPOINT_MAX_BYTES, ROOM_IDLE_TTL_MS, RoomRegistry } from './rooms'
import { serveStatic } from './static'
import type { IceSettings } from './turn'

/**
 * Builds the whole server: rooms (restored from SQLite), the socket.io signaling layer, the
 * HTTP API, datasets and the built client, all on one port.
 */

export interface ServerOptions {
  /** 0 picks a free port (tests). */
  port: number
  host: string
  /** Directory for the SQLite database; rooms survive restarts with the same dataDir. */
  dataDir: string
  /** The built client (dist/). */
  staticDir: string
  log?: (msg: string) => void
  /** Replaces the static file server (the `--dev` Vite middleware); call next() to fall through. */
  middleware?: (req: IncomingMessage, res: ServerResponse, next: () => void) => void
  /** PUBLIC_URL: the origin students open; null/absent → derived per request (public-origin.ts). */
  publicUrl?: string | null
  /** LAN IPv4 addresses for the derived origin; default: this machine's (os.networkInterfaces). */
  lanAddresses?: readonly string[]
  /** Defaults to signaling-server/datasets.ts (which also serves per-peer shards). */
  getDatasetBinary?: (name: DatasetName, split: 'train' | 'test') => Promise<Uint8Array>
  /** Server-wide STUN/TURN servers and TURN credentials for volunteers (turn.ts); default none. */
  ice?: IceSettings
  /** Serve HTTPS with this key and certificate (PEM; see tls.ts); absent: plain HTTP. `selfSigned`: the host page warns about the browser's warning. */
  tls?: { key: string; cert: string; selfSigned?: boolean } | null
  /** With `tls`: also listen here over plain HTTP and redirect every request to HTTPS (0 picks a port). */
  redirectPort?: number | null
  /**
   * REDIS_URL: rooms live in Redis and several processes serve them behind a balancer
   * (ownership.ts, docs/deploy.md); absent: one process, rooms in SQLite under dataDir.
   */
  redisUrl?: string | null
}

export interface RunningServer {
  url: string
  port: number
  /** True when `url` is https (opts.tls). */
  secure: boolean
  /** The plain-HTTP listener that redirects to `url`, when one was asked for. */
  redirectPort: number | null
  /** The LAN origin students could use (null when the server is reachable only locally). */
  lanUrl: string | null
  registry: RoomRegistry
  io: SignalingServer
  close(): Promise<void>
}

/**
 * Lets the page use SharedArrayBuffer (tfjs-wasm threads, Hogwild updaters): cross-origin
 * isolation needs COOP + COEP on the document and CORP on everything it loads.
 */
export const ISOLATION_HEADERS: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
}

/**
 * Read-only routes another origin may fetch (a notebook's `tf.loadLayersModel`, a CodePen):
 * the room view, its history and the model files. Control routes (POST/DELETE, host token) get
 * no CORS headers, so a browser on another origin cannot read or preflight them.
 */
const CORS_READ_ROUTE = /^\/api\/rooms\/[^/]+(\/(history|model|model\.json|model\.weights\.bin))?$/

export const CORS_READ_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Content-Disposition, X-Tabswarm-Step, X-Tabswarm-Schema-Hash',
  // COEP pages on other origins may embed these responses only when they opt in.
  'Cross-Origin-Resource-Policy': 'cross-origin',
}

/** Adds CORS headers to reads of CORS_READ_ROUTE; answers their preflight. True when the request is answered. */
function applyCors(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
  if (!CORS_READ_ROUTE.test(pathname)) return false
  const method = req.method ?? 'GET'
  if (method === 'GET' || method === 'HEAD') {
    for (const [k, v] of Object.entries(CORS_READ_HEADERS)) res.setHeader(k, v)
    return false
  }
  if (method !== 'OPTIONS') return false
  res.statusCode = 204
  res.setHeader('Access-Control-Allow-Origin', '*')
  res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD')
  res.setHeader('Access-Control-Allow-Headers', 'Range, If-None-Match')
  res.setHeader('Access-Control-Max-Age', '86400')
  res.end()
  return true
}

/**
 * The largest message a client may send: a checkpoint of the largest model any room can have
 * (about 1.6 MB), plus room for its envelope. Signals and reports are a few KB; anything larger
 * closes the connection before it is parsed (and byte budgets in handlers.ts bound the rate).
 */
const MAX_SOCKET_MESSAGE_BYTES = CHECKPOINT_MAX_BYTES + 64 * 1024
/** How often idle rooms are looked for. */
const EXPIRY_SWEEP_MS = 60_000

/**
 * @example
 * const s = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: 'dist' })
 * await fetch(`${s.url}/healthz`)
 * await s.close()
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {})
  const backend = await openBackend(opts, log)
  const { registry } = backend
  // Idle rooms go with their history (rooms.ts expire); ROOM_TTL_DAYS overrides the default.
  const ttlDays = Number(process.env.ROOM_TTL_DAYS)
  const ttlMs = Number.isFinite(ttlDays) && ttlDays > 0 ? ttlDays * 24 * 3600_000 : ROOM_IDLE_TTL_MS
  const expiry = setInterval(() => {
    for (const name of registry.expire(ttlMs)) log(`room '${name}' expired (empty and idle)`)
  }, EXPIRY_SWEEP_MS)
  expiry.unref()

  const secure = Boolean(opts.tls)
  const late: LateParts = { bus: null, lanUrl: null, secure }
  const handler = requestHandler(opts, registry, log, late)
  const http: HttpServer = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : createServer(handler)
  const io = createSocketServer(http)
  const ownership = backend.attach(io)
  late.ownership = ownership
  late.bus = attachHandlers(io, registry, log, opts.ice, ownership)

  await listen(http, opts.port, opts.host)
  const port = (http.address() as AddressInfo).port
  const scheme = secure ? 'https' : 'http'
  const lan = lanOrigin(opts.host, port, opts.lanAddresses ?? lanAddresses(networkInterfaces()))
  late.lanUrl = lan && secure ? lan.replace(/^http:/, 'https:') : lan
  const shownHost = opts.host === '0.0.0.0' || opts.host === '::' ? 'localhost' : opts.host
  let redirect: HttpServer | null = null
  if (secure && opts.redirectPort != null) {
    redirect = createServer(redirectToHttps(port, shownHost))
    try {
      await listen(redirect, opts.redirectPort, opts.host)
    } catch (err) {
      await shutdown(late.bus, io, http, backend)
      throw err
    }
  }
  let closed: Promise<void> | null = null

  return {
    url: `${scheme}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
    port,
    secure,
    redirectPort: redirect ? (redirect.address() as AddressInfo).port : null,
    lanUrl: late.lanUrl,
    registry,
    io,
    close() {
      clearInterval(expiry)
      closed ??= Promise.all([
        shutdown(late.bus, io, http, backend),
        redirect ? new Promise<void>((resolve) => { redirect.close(() => resolve()); redirect.closeAllConnections() }) : undefined,
      ]).then(() => undefined)
      return closed
    },
  }
}

/**
 * The plain-HTTP listener next to HTTPS: a student who types `http://ADDRESS:PORT` lands on the
 * HTTPS origin of the same host. 307, not 308: a browser must not remember it should the
 * server be run over plain HTTP again.
 */
function redirectToHttps(httpsPort: number, fallbackHost: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    let hostname = fallbackHost
    try {
      if (req.headers.host) hostname = new URL(`http://${req.headers.host}`).hostname
    } catch {
      // A malformed Host header: send them to the address the server reports.
    }
    const path = (req.url ?? '/').startsWith('/') ? req.url ?? '/' : '/'
    res.statusCode = 307
    res.setHeader('Location', `https://${hostname}:${httpsPort}${path}`)
    res.setHeader('Cache-Control', 'no-store')
    res.end()
  }
}

/** What requests read but only exists once the server is built: the socket layer, and the LAN origin once listening (port 0 picks one). */
interface LateParts {
  bus: RoomBus | null
  ownership?: RoomOwnership
  lanUrl: string | null
  /** Served over TLS: origins derived from the Host header are https. */
  secure: boolean
}

/** The HTTP side: the API first, then the dev middleware or the built client. */
function requestHandler(
  opts: ServerOptions, registry: RoomRegistry, log: (msg: string) => void, late: LateParts,
): (req: IncomingMessage, res: ServerResponse) => void {
  const publicUrl = opts.publicUrl ?? null
  const originFor = (req: IncomingMessage) => {
    const o = resolvePublicOrigin({ publicUrl, lanUrl: late.lanUrl, requestHost: req.headers.host })
    // resolvePublicOrigin builds request-derived origins as http://; over TLS they are https://.
    return late.secure && o.source === 'request' ? { ...o, url: o.url.replace(/^http:/, 'https:') } : o
  }
  const getDatasetBinary = opts.getDatasetBinary ?? datasetBinary
  const tls = !opts.tls ? 'none' as const : opts.tls.selfSigned ? 'self-signed' as const : 'certificate' as const
  const getShardBinary = opts.getDatasetBinary ? undefined : (n: DatasetName, s: 'train' | 'test', q: ShardQuery) => shardBinary(n, s, q)
  const hasShard = (n: DatasetName, s: 'train' | 'test', q: ShardQuery) => shardCached(n, s, q)

  return (req, res) => {
    for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v)
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      res.statusCode = 400
      return void res.end('bad request\n')
    }
    if (applyCors(req, res, url.pathname)) return
    const ctx = { rooms: registry, bus: late.bus!, log, getDatasetBinary, getShardBinary, hasShard, publicOrigin: originFor, tls, ownership: late.ownership }
    handleApi(req, res, url.pathname, url.searchParams, ctx)
      .then(async (handled) => {
        if (!handled) await serveNonApi(opts, req, res, url.pathname)
      })
      .catch((err) => {
        log(`request ${req.method} ${req.url} failed: ${String(err)}`)
        if (!res.headersSent) res.statusCode = 500
        res.end()
      })
  }
}

async function serveNonApi(opts: ServerOptions, req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
  if (opts.middleware) {
    opts.middleware(req, res, () => {
      res.statusCode = 404
      res.end('not found\n')
    })
    return
  }
  if (!(await serveStatic(req, res, pathname, opts.staticDir))) {
    res.statusCode = 405
    res.end('method not allowed\n')
  }
}

function createSocketServer(http: HttpServer): SignalingServer {
  const io: SignalingServer = new Server(http, {
    maxHttpBufferSize: MAX_SOCKET_MESSAGE_BYTES,
    // Vite's HMR websocket shares this server in --dev: leave upgrades we don't own alone.
    destroyUpgrade: false,
    serveClient: false,
  })
  // The polling transport's responses must carry the isolation headers too (require-corp).
  io.engine.on('initial_headers', (headers: Record<string, string>) => Object.assign(headers, ISOLATION_HEADERS))
  io.engine.on('headers', (headers: Record<string, string>) => Object.assign(headers, ISOLATION_HEADERS))
  return io
}

function listen(http: HttpServer, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => {
      http.off('error', reject)
      resolve()
    })
  })
}

async function shutdown(bus: RoomBus | null, io: SignalingServer, http: HttpServer, backend: Backend): Promise<void> {
  bus?.close()
  // First, so another process can take our rooms at once (the lease goes with what we wrote).
  await backend.beforeClose()
  // No io.disconnectSockets(): a server-side disconnect tells socket.io clients "you were
  // sent away" and they never reconnect. Closing the transports (io.close) reads to them
  // as a dropped connection, so volunteers reconnect on their own when the server is back.
  await new Promise<void>((resolve) => {
    io.close(() => resolve())
    http.closeAllConnections()
  })
  await backend.close()
}

/** Where rooms live: SQLite in dataDir (one process) or Redis (several; ownership.ts). */
interface Backend {
  registry: RoomRegistry
  /** Wires the socket.io server to the backend (the Redis adapter) and says who serves which room. */
  attach(io: SignalingServer): RoomOwnership
  beforeClose(): Promise<void>
  close(): Promise<void>
}

async function openBackend(opts: ServerOptions, log: (msg: string) => void): Promise<Backend> {
  const onStoreError = (err: unknown) => log(`persistence error: ${String(err)}`)
  if (!opts.redisUrl) {
    const store = openStore(opts.dataDir, log)
    const registry = new RoomRegistry({ store, onStoreError })
    registry.restore(store.load())
    return { registry, attach: () => new LocalOwnership(registry), beforeClose: async () => {}, close: async () => store.close() }
  }
  // Commands wait (offline queue) while Redis reconnects, but not forever: a request fails
  // after a few retries and the claim answers 'busy'.
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 3, lazyConnect: true })
  let lastError = ''
  redis.on('error', (err: Error) => {
    lastError = err.message
    log(`redis: ${err.message}`)
  })
  try {
    await redis.connect()
  } catch (err) {
    redis.disconnect()
    throw new Error(`cannot reach Redis at ${redactUrl(opts.redisUrl)} (REDIS_URL): ${lastError || String(err)}`)
  }
  const pub = redis.duplicate()
  const sub = redis.duplicate()
  for (const c of [pub, sub]) c.on('error', (err: Error) => log(`redis adapter: ${err.message}`))
  // The adapter unsubscribes on close without awaiting; with Redis gone that rejection would be
  // unhandled. Observed here, it is logged instead (the process is shutting down anyway).
  for (const m of ['punsubscribe', 'unsubscribe'] as const) {
    const original = sub[m].bind(sub) as (...a: unknown[]) => Promise<unknown>
    ;(sub as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      const p = original(...a)
      p.catch((err: unknown) => log(`redis adapter: ${m} on close: ${String(err)}`))
      return p
    }
  }
  const token = processToken()
  const store = redisStore(redis, token, onStoreError)
  const registry = new RoomRegistry({ store, onStoreError })
  let ownership: RedisOwnership | null = null
  log(`rooms in Redis (${redactUrl(opts.redisUrl)}); this process is ${token}`)
  return {
    registry,
    attach(io) {
      io.adapter(createAdapter(pub, sub))
      const cluster = io as unknown as { serverSideEmit(ev: string, room: string): void; on(ev: string, cb: (room: unknown) => void): void }
      ownership = new RedisOwnership({
        redis, token, registry, store, log,
        bus: {
          requestRelease: (room) => cluster.serverSideEmit(RELEASE_EVENT, room),
          onReleaseRequest: (cb) => cluster.on(RELEASE_EVENT, (room) => {
            if (typeof room === 'string' && room.length <= 128) cb(room)
          }),
        },
      })
      return ownership
    },
    beforeClose: async () => { await ownership?.close() },
    close: async () => {
      await Promise.all([redis, pub, sub].map((c) => c.quit().catch(() => undefined)))
    },
  }
}

/** Another process asks the holder of a room to hand it over (ownership.ts). */
const RELEASE_EVENT = 'tabswarm:release-room'

/** A Redis URL for the log, without its password. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'REDIS_URL'
  }
}
