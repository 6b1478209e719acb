import { monitorEventLoopDelay } from 'node:perf_hooks'
import { startServer } from '../../signaling-server/server'

/**
 * The real signaling server in a process of its own, for bench/signaling.ts: forked with
 * `--import tsx` and an IPC channel, DATA_DIR (and MAX_SOCKETS_PER_ADDRESS) in the environment,
 * so its CPU, RSS and event-loop delay are its own and not the load generator's. It changes
 * nothing in the server and adds no per-event hooks (their cost would be measured as the server's).
 * IPC in: { op: 'reset' } (a phase starts) and { op: 'stats' }; out: { ev: 'ready', url, pid }
 * once listening, { ev: 'stats', ... } per request.
 */

export interface SignalingServerStats {
  ev: 'stats'
  /** Bytes, now and the largest 100 ms sample since the reset. */
  rss: number
  rssMax: number
  heapUsed: number
  /** Event-loop delay beyond the 10 ms sampling timer, ms. */
  lag: { p50: number; p99: number; max: number; mean: number; samples: number }
  /** CPU time since the reset ÷ wall time (1 = one full core). */
  cpu: number
  /** Stalls over STALL_MS since the reset: [Date.now() when the loop came back, ms late]; at most 50. */
  stalls: [number, number][]
  sockets: number
  rooms: number
}

export type SignalingServerOp = { op: 'reset' } | { op: 'stats' }

const RESOLUTION_MS = 10
const dataDir = process.env.DATA_DIR
if (!dataDir || !process.send) throw new Error('signaling-server: run it forked (IPC) with DATA_DIR set')

const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: `${dataDir}/dist`, log: () => {} })

const lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
lag.enable()
let cpu0 = process.cpuUsage()
let t0 = performance.now()
let rssMax = 0
const sample = () => void (rssMax = Math.max(rssMax, process.memoryUsage.rss()))
setInterval(sample, 100).unref()
const beyond = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)

/**
 * When the loop stalled, so a stall can be matched with the load generator's (both stalled: the
 * machine; only the server: the server).
 */
const STALL_MS = 500
let stalls: [number, number][] = []
let tick = performance.now()
setInterval(() => {
  const now = performance.now()
  const late = now - tick - 100
  tick = now
  if (late > STALL_MS && stalls.length < 50) stalls.push([Date.now(), Math.round(late)])
}, 100).unref()

process.on('message', (m: SignalingServerOp) => {
  if (m.op === 'reset') {
    lag.reset()
    cpu0 = process.cpuUsage()
    t0 = performance.now()
    rssMax = 0
    stalls = []
    sample()
  } else if (m.op === 'stats') {
    sample()
    const mem = process.memoryUsage()
    const c = process.cpuUsage(cpu0)
    const stats: SignalingServerStats = {
      ev: 'stats',
      rss: mem.rss, rssMax, heapUsed: mem.heapUsed,
      lag: { p50: beyond(lag.percentile(50)), p99: beyond(lag.percentile(99)), max: beyond(lag.max), mean: beyond(lag.mean), samples: lag.count },
      cpu: (c.user + c.system) / 1000 / (performance.now() - t0),
      stalls: [...stalls],
      sockets: server.io.engine.clientsCount,
      rooms: server.registry.list().length,
    }
    process.send!(stats)
  }
})

process.on('disconnect', () => {
  void server.close().then(() => process.exit(0))
})
process.send({ ev: 'ready', url: server.url, pid: process.pid })
