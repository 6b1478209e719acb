import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { io as connect, type Socket } from 'socket.io-client'
import { argOf, writeResult } from './common'
import { PROTOCOL_VERSION } from '../shared/protocol/version'
import { startReportingVolunteer, type ReportingVolunteer } from '../tests/support/report-driver'

/**
 * What one spectator page (dashboard, projector, host view) costs the server: the push it
 * follows now (a socket.io spectator with the history feed: 'room-state' on changes, the run
 * history once, then 'history-delta') against the polling it replaced (GET the room every 1 s
 * and the whole history every 2 s). issue 24 "Push, not poll".
 *   node --import tsx bench/spectator-cost.ts [--volunteers 8] [--spectators 20] [--history-points 3600] [--phase-s 25]
 * The real server runs in a process of its own (this file with --serve), so its CPU time is its
 * own; volunteers are real socket.io clients reporting every 500 ms as training tabs do
 * (tests/support/report-driver.ts); the room starts with `--history-points` points of history
 * (3600: an hour of training at the server's 1 Hz sampling). Phases: volunteers only (the
 * baseline), then M push spectators, then M pollers, each `--phase-s` long after a settling
 * second. Bytes are what the server sends each spectator at the application level (HTTP status
 * line, headers and bodies; socket.io packets), without TCP or WebSocket framing. The one-time
 * cost of opening a page (the snapshot, the first GET) is reported apart from the steady state.
 * Writes bench/results/spectator-cost.json.
 */

const ROOM = 'spectate'
const SCRIPT = fileURLToPath(import.meta.url)

type Stats = { ev: 'cpu'; userUs: number; systemUs: number }
type Ready = { ev: 'ready'; url: string }

if (process.argv.includes('--serve')) await serve()
else await main()

/** The server process: the real startServer, a room with an hour of history, CPU time on request. */
async function serve() {
  const { startServer } = await import('../signaling-server/server')
  const { appendPoint } = await import('../signaling-server/history')
  const { defaultConfig } = await import('../shared/config')
  const dataDir = process.env.DATA_DIR!
  const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: join(dataDir, 'dist'), log: () => {} })
  const created = server.registry.create({ name: ROOM, config: { ...defaultConfig(), totalSteps: 100_000 }, tokenHash: null })
  if (!created.ok) throw new Error(created.message)
  const run = server.registry.currentRun(created.room)
  const points = Number(process.env.HISTORY_POINTS ?? 3600)
  run.started = Date.now() - points * 1000
  for (let i = 0; i < points; i++) {
    appendPoint(run, { t: i, loss: 2.3 / (1 + i / 100), accuracy: Math.min(0.98, 0.1 + i / 4000), globalStep: i * 5, bytes: i * 1e6, peers: 8, lr: 0.05, h: null, consensus: 0.01 })
  }
  process.on('message', (m: { op: string }) => {
    if (m.op === 'cpu') {
      const u = process.cpuUsage()
      process.send!({ ev: 'cpu', userUs: u.user, systemUs: u.system } satisfies Stats)
    } else if (m.op === 'stop') void server.close().then(() => process.exit(0))
  })
  process.send!({ ev: 'ready', url: server.url } satisfies Ready)
}

function ask(child: ChildProcess): Promise<Stats> {
  return new Promise((resolve) => {
    const on = (m: Stats) => {
      if (m.ev !== 'cpu') return
      child.off('message', on)
      resolve(m)
    }
    child.on('message', on)
    child.send({ op: 'cpu' })
  })
}

interface Spectator {
  /** Bytes received so far. */
  bytes(): number
  stop(): void
}

/** A page following the push: a spectator socket with the history feed; resolves once the snapshot came. */
async function pushSpectator(url: string): Promise<Spectator> {
  const s: Socket = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  let bytes = 0
  s.io.engine?.on('packet', (p: { data?: unknown }) => void (bytes += typeof p.data === 'string' ? Buffer.byteLength(p.data) : 0))
  await new Promise<void>((resolve) => {
    s.once('history', () => resolve())
    s.on('connect', () => s.emit('join', { v: PROTOCOL_VERSION, room: ROOM, role: 'spectator', history: true }))
  })
  return { bytes: () => bytes, stop: () => void s.disconnect() }
}

/** A page as it polled before: GET the room every 1 s and the whole history every 2 s, never overlapping. */
async function pollSpectator(url: string): Promise<Spectator> {
  let bytes = 0
  let stopped = false
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`, { cache: 'no-store' })
    const body = await res.arrayBuffer()
    let head = `HTTP/1.1 ${res.status} ${res.statusText}\r\n`.length + 2
    res.headers.forEach((v, k) => void (head += k.length + v.length + 4))
    bytes += head + body.byteLength
  }
  const loop = async (path: string, everyMs: number) => {
    while (!stopped) {
      await get(path).catch(() => undefined)
      await new Promise((r) => setTimeout(r, everyMs))
    }
  }
  await Promise.all([get(`/api/rooms/${ROOM}`), get(`/api/rooms/${ROOM}/history?format=json`)])
  void loop(`/api/rooms/${ROOM}`, 1000)
  void loop(`/api/rooms/${ROOM}/history?format=json`, 2000)
  return { bytes: () => bytes, stop: () => void (stopped = true) }
}

async function measure(child: ChildProcess, seconds: number, spectators: Spectator[]) {
  const before = await ask(child)
  const bytes0 = spectators.reduce((a, s) => a + s.bytes(), 0)
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const after = await ask(child)
  const wallS = (performance.now() - t0) / 1000
  const cpuMs = (after.userUs + after.systemUs - before.userUs - before.systemUs) / 1000
  const bytes = spectators.reduce((a, s) => a + s.bytes(), 0) - bytes0
  return { wallS, cpuMs, bytes }
}

async function main() {
  const volunteers = Number(argOf('--volunteers') ?? 8)
  const spectators = Number(argOf('--spectators') ?? 20)
  const historyPoints = Number(argOf('--history-points') ?? 3600)
  const phaseS = Number(argOf('--phase-s') ?? 25)
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-spectator-'))
  const child = fork(SCRIPT, ['--serve'], { execArgv: ['--import', 'tsx'], env: { ...process.env, DATA_DIR: dataDir, HISTORY_POINTS: String(historyPoints) } })
  const url = await new Promise<string>((resolve) => child.on('message', (m: Ready) => m.ev === 'ready' && resolve(m.url)))
  const vols: ReportingVolunteer[] = []
  for (let i = 0; i < volunteers; i++) vols.push(await startReportingVolunteer(url, ROOM, `v${i}`))
  await new Promise((r) => setTimeout(r, 1000))

  const baseline = await measure(child, phaseS, [])
  console.log(`baseline: ${baseline.cpuMs.toFixed(0)} ms CPU in ${baseline.wallS.toFixed(1)} s`)

  const phase = async (kind: 'push' | 'poll') => {
    const open = await ask(child)
    const pages = await Promise.all(Array.from({ length: spectators }, () => (kind === 'push' ? pushSpectator(url) : pollSpectator(url))))
    const opened = await ask(child)
    const openBytes = pages.reduce((a, s) => a + s.bytes(), 0)
    await new Promise((r) => setTimeout(r, 1000))
    const m = await measure(child, phaseS, pages)
    for (const p of pages) p.stop()
    await new Promise((r) => setTimeout(r, 2500)) // pollers' last requests end; sockets close
    const baseCpuPerS = baseline.cpuMs / baseline.wallS
    const perMin = 60 / m.wallS
    const r = {
      kind,
      spectators,
      /** Opening the pages: all of them together. */
      openCpuMs: +((opened.userUs + opened.systemUs - open.userUs - open.systemUs) / 1000).toFixed(1),
      openBytesPerSpectator: Math.round(openBytes / spectators),
      /** Steady state, beyond the volunteers' own baseline, per spectator and minute. */
      cpuMsPerSpectatorMin: +(((m.cpuMs - baseCpuPerS * m.wallS) / spectators) * perMin).toFixed(1),
      bytesPerSpectatorMin: Math.round((m.bytes / spectators) * perMin),
      serverCpuShare: +(m.cpuMs / (m.wallS * 1000)).toFixed(3),
    }
    console.log(kind, r)
    return r
  }
  const push = await phase('push')
  const poll = await phase('poll')

  for (const v of vols) v.stop()
  child.send({ op: 'stop' })
  await new Promise((r) => child.once('exit', r))
  rmSync(dataDir, { recursive: true, force: true })
  const file = writeResult('spectator-cost', {
    volunteers, spectators, historyPoints, phaseS,
    baseline: { cpuMsPerMin: +((baseline.cpuMs / baseline.wallS) * 60).toFixed(0), serverCpuShare: +(baseline.cpuMs / (baseline.wallS * 1000)).toFixed(3) },
    push, poll,
    ratio: {
      cpu: +(poll.cpuMsPerSpectatorMin / Math.max(0.1, push.cpuMsPerSpectatorMin)).toFixed(1),
      bytes: +(poll.bytesPerSpectatorMin / Math.max(1, push.bytesPerSpectatorMin)).toFixed(1),
    },
  })
  console.log(`wrote ${file}`)
}
