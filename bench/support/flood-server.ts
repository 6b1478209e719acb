import { monitorEventLoopDelay } from 'node:perf_hooks'
import { shardCacheBytes } from '../../signaling-server/datasets'
import { startServer } from '../../signaling-server/server'

/**
 * The real signaling server in a process of its own, for bench/server-flood.ts: forked with
 * `--import tsx` and an IPC channel, DATA_DIR in the environment. It changes nothing in the
 * server; it only watches it from inside:
 *   - event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms resolution),
 *   - RSS and heap, sampled every 100 ms (the parent also reads /proc for the true peak),
 *   - CPU time, rooms, sockets, shard-cache bytes,
 *   - every event that reached the handlers (socket.onAny) and every 'error' the server sent
 *     back, by `event:code` (what it refused or rate-limited; socket.onAnyOutgoing).
 * IPC in: { op: 'reset' } (a new phase starts: zero everything) and { op: 'stats' };
 * out: { ev: 'ready', url, pid, maxMessageBytes } once listening, { ev: 'stats', ... } per request.
 */

export interface FloodServerStats {
  ev: 'stats'
  /** Bytes. */
  rss: number
  rssMaxSampled: number
  heapUsed: number
  heapUsedMax: number
  external: number
  arrayBuffers: number
  /** Event-loop delay beyond the 10 ms sampling timer, ms. */
  lag: { p50: number; p99: number; max: number; mean: number; samples: number }
  /** Server CPU time since the reset ÷ wall time (1 = one full core). */
  cpu: number
  rooms: number
  sockets: number
  shardCacheBytes: number
  /**
   * 'error' events the server sent, by `event:code`, markers' answers left out; 'join:room-budget'
   * (per-address room budget), 'connect:byte-budget' and 'connect:socket-cap' are told apart.
   */
  refusals: Record<string, number>
  /** Socket events that reached the handlers (decoded), by name, markers included. */
  received: Record<string, number>
  /** Markers (signals to 'nobody') answered. */
  markers: number
  /** Sockets gone, by socket.io's reason ('client namespace disconnect' is the client's own). */
  disconnects: Record<string, number>
  logLines: number
}

export type FloodServerOp = { op: 'reset' } | { op: 'stats' }

const RESOLUTION_MS = 10
const dataDir = process.env.DATA_DIR
if (!dataDir || !process.send) throw new Error('flood-server: run it forked (IPC) with DATA_DIR set')

let logLines = 0
const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: `${dataDir}/dist`, log: () => void logLines++ })

let refusals: Record<string, number> = {}
let received: Record<string, number> = {}
let markers = 0
let disconnects: Record<string, number> = {}
server.io.on('connection', (socket) => {
  // The bench's markers are signals to 'nobody' (an error answer by design): their answers are
  // counted apart from real refusals. Per socket, answers come in the order the events came.
  let pendingMarkers = 0
  socket.onAny((event: string, payload: unknown) => {
    received[event] = (received[event] ?? 0) + 1
    if (event === 'signal' && (payload as { to?: unknown } | null)?.to === 'nobody') pendingMarkers++
  })
  socket.onAnyOutgoing((event: string, payload: unknown) => {
    if (event !== 'error' || typeof payload !== 'object' || payload === null) return
    const p = payload as { event?: string; code?: string; message?: string }
    if (p.event === 'signal' && pendingMarkers > 0) {
      pendingMarkers--
      markers++
      return
    }
    refusals[refusalKey(p)] = (refusals[refusalKey(p)] ?? 0) + 1
  })
  socket.on('disconnect', (reason: string) => void (disconnects[reason] = (disconnects[reason] ?? 0) + 1))
})

/** `event:code`, with the rate limits that are not per event named apart by their message. */
function refusalKey(p: { event?: string; code?: string; message?: string }): string {
  if (p.code === 'rate-limited' && p.event === 'join' && p.message?.includes('new rooms')) return 'join:room-budget'
  if (p.code === 'rate-limited' && p.event === 'connect' && p.message?.includes('bytes')) return 'connect:byte-budget'
  if (p.code === 'rate-limited' && p.event === 'connect' && p.message?.includes('connections')) return 'connect:socket-cap'
  return `${p.event}:${p.code}`
}

const lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
lag.enable()
let cpu0 = process.cpuUsage()
let t0 = performance.now()
let rssMax = 0
let heapMax = 0
const sample = () => {
  const m = process.memoryUsage()
  rssMax = Math.max(rssMax, m.rss)
  heapMax = Math.max(heapMax, m.heapUsed)
}
setInterval(sample, 100).unref()

const beyond = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)

process.on('message', (m: FloodServerOp) => {
  if (m.op === 'reset') {
    lag.reset()
    refusals = {}
    received = {}
    markers = 0
    disconnects = {}
    cpu0 = process.cpuUsage()
    t0 = performance.now()
    rssMax = 0
    heapMax = 0
    sample()
  } else if (m.op === 'stats') {
    sample()
    const mem = process.memoryUsage()
    const c = process.cpuUsage(cpu0)
    const stats: FloodServerStats = {
      ev: 'stats',
      rss: mem.rss, rssMaxSampled: rssMax, heapUsed: mem.heapUsed, heapUsedMax: heapMax,
      external: mem.external, arrayBuffers: mem.arrayBuffers,
      lag: {
        p50: beyond(lag.percentile(50)), p99: beyond(lag.percentile(99)), max: beyond(lag.max),
        mean: beyond(lag.mean), samples: lag.count,
      },
      cpu: (c.user + c.system) / 1000 / (performance.now() - t0),
      rooms: server.registry.list().length,
      sockets: server.io.engine.clientsCount,
      shardCacheBytes: shardCacheBytes(),
      refusals: { ...refusals }, received: { ...received }, markers, disconnects: { ...disconnects },
      logLines,
    }
    process.send!(stats)
  }
})

process.on('disconnect', () => {
  void server.close().then(() => process.exit(0))
})
// What socket.io admits in one message (server.ts sizes it from the largest checkpoint).
const maxMessageBytes = server.io.engine.opts.maxHttpBufferSize
process.send({ ev: 'ready', url: server.url, pid: process.pid, maxMessageBytes })
