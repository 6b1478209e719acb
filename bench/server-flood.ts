import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { io as connect, type Socket } from 'socket.io-client'
import { load, percentile, writeResult } from './common'
import type { FloodClientMsg, FloodPhase } from './support/flood-client'
import type { FloodServerOp, FloodServerStats } from './support/flood-server'

/**
 * The signaling server under the hostile floods of tests/adversarial/hostile-client.int.test.ts,
 * against the same server idle: its RSS, heap and event-loop delay, and how fast /healthz and an
 * honest socket's round trip answer, per phase.
 *   node --import tsx bench/server-flood.ts [--quick]
 * Three kinds of process, so that each one's CPU and memory are its own:
 *   - the server (bench/support/flood-server.ts: the real startServer, watched from inside),
 *   - one attacker per flood (bench/support/flood-client.ts),
 *   - this one: three honest volunteers reporting every 500 ms (one also times a round trip
 *     to the server), a /healthz probe every 100 ms, and the server's RSS from /proc.
 * Phases: idle; (a) 330k-link reports; (b) away/ready flapping; (c) rooms by joining new names;
 * (d) the largest events socket.io admits (and one over) before joining; (e) whole-split shards for new seeds; (f) a suspect and
 * report storm; then idle again. Each runs 15 s (5 s with --quick). Writes
 * bench/results/server-flood[-quick].json.
 */
const SCRIPT = fileURLToPath(import.meta.url)
const SERVER = fileURLToPath(new URL('./support/flood-server.ts', import.meta.url))
const CLIENT = fileURLToPath(new URL('./support/flood-client.ts', import.meta.url))
const quick = process.argv.includes('--quick')
const PHASE_S = quick ? 5 : 15
const GAP_MS = 2000
const MB = 2 ** 20

interface PhaseDef { name: string; what: string; attack?: FloodPhase }
const PHASES: PhaseDef[] = [
  { name: 'idle', what: 'server up, 3 honest volunteers reporting every 500 ms' },
  { name: 'a links', what: '4 joined sockets send reports with 330,000 links (~11 MB of JSON each); a socket the server closes is replaced and joins again', attack: 'links' },
  { name: 'b flap', what: '48 roster members send away/ready cycles, 50 per burst', attack: 'flap' },
  { name: 'c rooms', what: '40 sockets of one address join new room names', attack: 'rooms' },
  { name: 'd prejoin', what: '8 unjoined sockets send a checkpoint, a report and a signal each 64 KiB under the socket.io buffer, and a checkpoint 1 MiB over it', attack: 'prejoin' },
  { name: 'e shards', what: 'whole-split MNIST shards (~47 MB) for new seeds, 4 at a time', attack: 'shards' },
  { name: 'f storm', what: '64 roster members send suspects of random members and reports', attack: 'storm' },
  { name: 'after', what: 'idle again after the floods (what the server kept)' },
]

type Any = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pct = percentile
const r1 = (x: number) => +x.toFixed(1)

// ---- the server process ----

class ServerProc {
  readonly ready: Promise<{ url: string; pid: number; maxMessageBytes: number }>
  private waiting: ((s: FloodServerStats) => void)[] = []
  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.once('exit', (c) => reject(new Error(`server exited (${c})`)))
      child.on('message', (m: Any) => {
        if (m.ev === 'ready') resolve(m as { url: string; pid: number; maxMessageBytes: number })
        else if (m.ev === 'stats') this.waiting.shift()?.(m as FloodServerStats)
      })
    })
  }
  send(op: FloodServerOp) {
    this.child.send(op)
  }
  stats(): Promise<FloodServerStats> {
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.send({ op: 'stats' })
    })
  }
}

/** VmRSS and VmHWM (peak since the last reset) in bytes, from /proc; null off Linux. */
function procMem(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k: string) => Number(s.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1]) * 1024
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
  } catch {
    return null
  }
}
/** Resets VmHWM to the current RSS (Linux ≥ 4.0), so each phase's peak is its own. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

// ---- what the prober records per phase ----

interface Probe {
  healthz: number[]
  healthzFailed: number
  rtt: number[]
  rttLost: number
  rssSamples: number[]
}
const newProbe = (): Probe => ({ healthz: [], healthzFailed: 0, rtt: [], rttLost: 0, rssSamples: [] })

async function postRoom(url: string): Promise<string> {
  const r = await fetch(`${url}/api/rooms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  const body = (await r.json()) as Any
  if (r.status !== 201) throw new Error(`POST /api/rooms: ${r.status} ${JSON.stringify(body)}`)
  return body.room as string
}

async function honestVolunteer(url: string, room: string): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve())
    s.once('connect_error', reject)
  })
  const ack = (await s.timeout(10_000).emitWithAck('join', { v: 1, room, role: 'volunteer' })) as Any
  if (!ack.ok) throw new Error(`honest join: ${ack.message}`)
  s.emit('ready', { v: 1 })
  return s
}

export async function runServerFloodBench() {
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-flood-'))
  const server = new ServerProc(fork(SERVER, [], {
    execArgv: ['--import', 'tsx'], env: { ...process.env, DATA_DIR: dataDir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }))
  const attackers = new Set<ChildProcess>()
  let running = true
  try {
    const { url, pid, maxMessageBytes } = await server.ready
    const peakResets = resetPeak(pid)
    // Every room the floods need exists before the room flood spends this address's budget.
    const rooms = { honest: await postRoom(url), links: await postRoom(url), flap: await postRoom(url), storm: await postRoom(url) }
    const honest = [] as Socket[]
    for (let i = 0; i < 3; i++) honest.push(await honestVolunteer(url, rooms.honest))
    let probe = newProbe()

    // Honest traffic: a report every 500 ms from each; socket 0 times a marker's round trip.
    let markerOut = false
    const reporter = setInterval(() => {
      for (const s of honest) s.emit('report', { v: 1, step: 1, loss: 0.7, accuracy: 0.8, backend: 'wasm', samplesPerSec: 250, bytesSent: 1000, bytesReceived: 900, neighbors: [] })
      if (markerOut) return
      markerOut = true
      const p = probe
      const t0 = performance.now()
      const s = honest[0]
      const timer = setTimeout(() => { s.off('error', onError); p.rttLost++; markerOut = false }, 10_000)
      const onError = (e: Any) => {
        if (e?.event !== 'signal') return
        clearTimeout(timer)
        s.off('error', onError)
        p.rtt.push(performance.now() - t0)
        markerOut = false
      }
      s.on('error', onError)
      s.emit('signal', { v: 1, to: 'nobody', data: {} })
    }, 500)
    const rssTimer = setInterval(() => {
      const m = procMem(pid)
      if (m) probe.rssSamples.push(m.rss)
    }, 100)
    const prober = (async () => {
      while (running) {
        const p = probe
        const t0 = performance.now()
        try {
          const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) })
          await r.text()
          if (r.status === 200) p.healthz.push(performance.now() - t0)
          else p.healthzFailed++
        } catch {
          p.healthzFailed++
        }
        await sleep(100)
      }
    })()

    const loadBefore = load()
    const rows = []
    for (const def of PHASES) {
      let child: ChildProcess | null = null
      let done: Promise<Extract<FloodClientMsg, { ev: 'done' }>> | null = null
      let armedSockets = 0
      if (def.attack) {
        const room = def.attack === 'links' ? rooms.links : def.attack === 'flap' ? rooms.flap : rooms.storm
        const c = fork(CLIENT, [url, def.attack, room, String(maxMessageBytes)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        child = c
        attackers.add(c)
        const armed = new Promise<number>((resolve, reject) => {
          c.once('exit', (code) => reject(new Error(`attacker ${def.attack} exited (${code}) before it was armed`)))
          c.on('message', (m: FloodClientMsg) => { if (m.ev === 'armed') resolve(m.sockets) })
        })
        done = new Promise((resolve, reject) => {
          c.on('message', (m: FloodClientMsg) => { if (m.ev === 'done') resolve(m) })
          c.once('exit', (code) => reject(new Error(`attacker ${def.attack} exited (${code}) before it was done`)))
        })
        armedSockets = await armed
        await sleep(500) // the joins' membership broadcasts are over
      }
      resetPeak(pid)
      server.send({ op: 'reset' })
      probe = newProbe()
      const p = probe
      const t0 = performance.now()
      let result: Extract<FloodClientMsg, { ev: 'done' }> | null = null
      if (child && done) {
        child.send({ op: 'go', seconds: PHASE_S })
        result = await done
      } else await sleep(PHASE_S * 1000)
      const seconds = (performance.now() - t0) / 1000
      const st = await server.stats()
      const mem = procMem(pid)
      probe = newProbe() // the gap and the next attacker's setup are no phase's
      if (child) {
        await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)])
        child.kill('SIGKILL')
        attackers.delete(child)
      }

      const sent = result ? Object.entries(result.sent).filter(([k]) => k !== 'marker').reduce((a, [, n]) => a + n, 0) : 0
      const refused = Object.values(st.refusals).reduce((a, n) => a + n, 0)
      const receivedNoMarkers = Object.values(st.received).reduce((a, n) => a + n, 0) - Math.min(st.received.signal ?? 0, st.markers)
      // Per-socket event buckets (EVENT_RATE_LIMITS); the room and byte budgets are counted apart.
      const rateLimited = Object.entries(st.refusals).filter(([k]) => k.endsWith(':rate-limited')).reduce((a, [, n]) => a + n, 0)
      // Sockets the server closed or lost (a byte budget, a message over socket.io's buffer), not the clients' own leaving.
      const serverClosed = Object.entries(st.disconnects).filter(([k]) => k !== 'client namespace disconnect').reduce((a, [, n]) => a + n, 0)
      const rssMax = Math.max(peakResets && mem ? mem.hwm : 0, st.rssMaxSampled, ...p.rssSamples)
      const extra = { ...(result?.extra ?? {}) } as Any
      for (const k of ['joinAckMs', 'shardMs'] as const) {
        const xs = extra[k] as number[] | undefined
        if (xs) extra[k] = { n: xs.length, p50: r1(pct(xs, 50)), p99: r1(pct(xs, 99)), max: r1(Math.max(...xs)) }
      }
      const row = {
        phase: def.name, what: def.what, seconds: r1(seconds), attackerSockets: armedSockets,
        eventsSent: sent, sentByEvent: result ? Object.fromEntries(Object.entries(result.sent).filter(([k]) => k !== 'marker')) : {},
        // Events that reached the server's handlers (attackers' and honest ones, markers left out):
        // fewer than sent where the transport closed a socket over a message too big for its buffer.
        serverReceived: receivedNoMarkers, serverReceivedByEvent: st.received, markersAnswered: st.markers,
        // Server 'error' answers other than the markers' (which are errors by design).
        refused, rateLimited, roomBudgetRefusals: st.refusals['join:room-budget'] ?? 0,
        serverClosed, disconnectsByReason: st.disconnects,
        serverErrorsByCode: st.refusals, attackerErrorsSeen: result?.errors ?? {},
        rssMaxMB: r1(rssMax / MB), rssEndMB: r1((mem?.rss ?? st.rss) / MB),
        heapUsedEndMB: r1(st.heapUsed / MB), heapUsedMaxMB: r1(st.heapUsedMax / MB),
        externalEndMB: r1(st.external / MB), arrayBuffersEndMB: r1(st.arrayBuffers / MB),
        lagMs: { p50: r1(st.lag.p50), p99: r1(st.lag.p99), max: r1(st.lag.max), mean: r1(st.lag.mean), samples: st.lag.samples },
        healthzMs: { n: p.healthz.length, failed: p.healthzFailed, p50: r1(pct(p.healthz, 50)), p99: r1(pct(p.healthz, 99)), max: r1(Math.max(...p.healthz)) },
        honestRttMs: { n: p.rtt.length, lost: p.rttLost, p50: r1(pct(p.rtt, 50)), p99: r1(pct(p.rtt, 99)), max: r1(Math.max(...p.rtt)) },
        serverCpu: +st.cpu.toFixed(2), rooms: st.rooms, sockets: st.sockets, shardCacheMB: r1(st.shardCacheBytes / MB),
        rssTimelineMB: p.rssSamples.filter((_, i) => i % 10 === 0).map((b) => Math.round(b / MB)),
        attacker: extra, loadavg: load(),
      }
      rows.push(row)
      console.log(`  ${def.name}: ${sent} events sent, ${receivedNoMarkers} received, ${row.refused} refused (${rateLimited} rate-limited), ${serverClosed} sockets closed, RSS max ${row.rssMaxMB} MB end ${row.rssEndMB} MB, ` +
        `heap ${row.heapUsedEndMB} MB, lag p50/p99/max ${row.lagMs.p50}/${row.lagMs.p99}/${row.lagMs.max} ms, ` +
        `healthz p50/p99 ${row.healthzMs.p50}/${row.healthzMs.p99} ms (${p.healthzFailed} failed), server CPU ${row.serverCpu}, load ${row.loadavg.join('/')}`)
      await sleep(GAP_MS)
    }
    clearInterval(reporter)
    clearInterval(rssTimer)
    running = false
    await prober
    for (const s of honest) s.disconnect()
    printTable(rows)
    return {
      code: codeState(),
      phaseSeconds: PHASE_S, peakFromProc: peakResets, maxMessageBytes,
      note: 'lag = event-loop delay beyond the 10 ms monitorEventLoopDelay timer; RSS max = /proc VmHWM since the phase started (and 100 ms samples)',
      rows, load: { before: loadBefore, after: load() },
    }
  } finally {
    running = false
    for (const c of attackers) c.kill('SIGKILL')
    server.child.disconnect()
    await Promise.race([new Promise((r) => server.child.once('exit', r)), sleep(5000)])
    server.child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The commit measured and the server-side files that differed from it (the checkout is shared and edited while benches run). */
function codeState(): { head: string; modified: string[] } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim()
    return { head: git('rev-parse', '--short', 'HEAD'), modified: git('--no-optional-locks', 'status', '--porcelain', '--', 'signaling-server', 'shared').split('\n').filter(Boolean) }
  } catch {
    return null
  }
}

function printTable(rows: Any[]) {
  const head = ['phase', 'sent', 'recv', 'refused', 'rate-lim', 'closed', 'RSS max', 'RSS end', 'heap', 'lag p50', 'lag p99', 'lag max', 'hz p50', 'hz p99', 'hz fail', 'rtt p99', 'cpu']
  const lines = rows.map((r) => [
    r.phase, r.eventsSent, r.serverReceived, r.refused, r.rateLimited, r.serverClosed, r.rssMaxMB, r.rssEndMB, r.heapUsedEndMB,
    r.lagMs.p50, r.lagMs.p99, r.lagMs.max, r.healthzMs.p50, r.healthzMs.p99, r.healthzMs.failed, r.honestRttMs.p99, r.serverCpu,
  ].map(String))
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')
  console.log(`\n(MB; lag and healthz in ms; cpu = server cores)\n${fmt(head)}`)
  for (const l of lines) console.log(fmt(l))
}

if (process.argv[1] === SCRIPT) {
  console.log(`server-flood: the signaling server under hostile floods vs idle (${PHASE_S} s phases)`)
  const r = await runServerFloodBench()
  console.log('wrote', writeResult(`server-flood${quick ? '-quick' : ''}`, r))
  process.exit(0)
}
