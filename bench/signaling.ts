import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { MAX_SOCKETS_PER_ADDRESS, MEMBERSHIP_BATCH_MS } from '../signaling-server/handlers'
import { MAX_PEERS_PER_ROOM } from '../signaling-server/rooms'
import { argOf, benchWorkerFlags, load, percentile, writeResult } from './common'
import type { SignalingServerOp, SignalingServerStats } from './support/signaling-server'
import { FakeVolunteer, newTally, ROSTER_DEADLINE_MS, type SwarmContext, type Tally } from './support/signaling-volunteer'

/**
 * `npm run bench -- signaling`: the signaling server under volunteers' own traffic, many of them
 * (issue #25 "thousands of sockets"). A load generator in this process opens socket.io clients
 * that behave like volunteers without WebRTC (bench/support/signaling-volunteer.ts: join, ready,
 * a report every second, a signal to a ring neighbour every ~10 s), ramped up at RAMP_PER_SEC,
 * then churns CHURN_PER_MIN of them per minute (one leaves, a new one joins the same room).
 *   node --import tsx bench/signaling.ts [--quick] [--processes 1|2|1,2] [--redis-url URL] [--rooms 1|10] [--no-sweep]
 * Loopback only; every phase is bounded (ramp, STEADY_S, ROSTER_DEADLINE_MS per join) and the
 * whole run by RUN_BOUND_MS.
 * Targets: 1 process (the real startServer in a child, bench/support/signaling-server.ts, so its
 * CPU, RSS and event-loop delay are its own), or N processes behind haproxy with Redis
 * (tools/cluster.ts startCluster, imported only then; CPU and RSS per process from /proc, the loop
 * delay from LAG_PROBE, loaded into each server process through NODE_OPTIONS).
 * Scenarios: 1 room (as large as a room may be: MAX_PEERS_PER_ROOM) and 10 rooms (2,000 sockets);
 * then a membership sweep: rooms of several sizes, reports and signals off, one change at a time
 * (a leave, then a join and ready), with deltas (today's client) and whole memberships (older
 * clients), to show how membership traffic grows with the room.
 * Writes bench/results/signaling[-partial][-quick][-pN].json (-pN: --processes given; -partial: --rooms or --no-sweep).
 */
const SCRIPT = fileURLToPath(import.meta.url)
const SERVER = fileURLToPath(new URL('./support/signaling-server.ts', import.meta.url))
const CLUSTER = fileURLToPath(new URL('../tools/cluster.ts', import.meta.url))
const quick = process.argv.includes('--quick')
/** Default: 1 process, then 2 behind haproxy where tools/cluster.ts exists (a failure there is reported, the 1-process numbers kept). */
const processModes = (argOf('--processes') ?? (existsSync(CLUSTER) ? '1,2' : '1')).split(',').map(Number)
/** New sockets per second: a classroom's arrival is far slower; faster only measures the ramp. */
const RAMP_PER_SEC = 50
const STEADY_S = quick ? 20 : 60
/** Share of the sockets replaced per minute in the steady phase. */
const CHURN_PER_MIN = 0.05
const REPORT_EVERY_MS = 1000
const SIGNAL_EVERY_MS = 10_000
/**
 * Every bench socket comes from 127.0.0.1, and the server admits MAX_SOCKETS_PER_ADDRESS (512)
 * per address: the bench's server processes get MAX_SOCKETS_PER_ADDRESS=SOCKET_CAP (docs/benchmarks.md says so).
 */
const SOCKET_CAP = 4096
/** `--rooms 10` runs only that scenario; `--no-sweep` skips the membership sweep. */
const SCENARIOS = (quick
  ? [{ rooms: 1, perRoom: 200 }, { rooms: 10, perRoom: 20 }]
  : [{ rooms: 1, perRoom: MAX_PEERS_PER_ROOM }, { rooms: 10, perRoom: 200 }]).filter((s) => !argOf('--rooms') || s.rooms === Number(argOf('--rooms')))
const SWEEP = !process.argv.includes('--no-sweep')
const SWEEP_SIZES = quick ? [8, 32, 128] : [16, 64, 128, MAX_PEERS_PER_ROOM]
/** Leave + join pairs per sweep room. */
const SWEEP_CHURNS = quick ? 5 : 10
const RUN_BOUND_MS = (quick ? 5 : 20) * 60_000
const MB = 2 ** 20

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pct = percentile
const r1 = (x: number) => +x.toFixed(1)
const dist = (xs: number[]) => ({ n: xs.length, p50: r1(pct(xs, 50)), p99: r1(pct(xs, 99)), max: r1(xs.length ? Math.max(...xs) : NaN) })
const tag = () => Math.random().toString(36).slice(2, 8)

/** Polls `pred` (a bench may; tests may not) until it holds, or throws after `ms`. */
async function waitFor(pred: () => boolean, ms: number, what: string) {
  const until = performance.now() + ms
  while (!pred()) {
    if (performance.now() > until) throw new Error(`signaling bench: ${what} not within ${ms} ms`)
    await sleep(5)
  }
}

// ---- what a phase measures on the server side ----

interface ProcStats {
  pid: number
  role: string
  /** CPU time ÷ wall time over the phase (1 = one full core). */
  cpu: number
  rssMB: number
  rssMaxMB: number | null
  /** Event-loop delay beyond the 10 ms timer (ms); null where no probe runs inside (cluster processes). */
  lag: { p50: number; p99: number; max: number } | null
  /**
   * Time its main thread waited for a CPU while runnable ÷ wall time (/proc/PID/schedstat): the
   * share of the phase the machine's other work (the generator, other users) kept it off a core.
   */
  queued: number | null
  /** Loop stalls over 500 ms: [Date.now() when it came back, ms late] (1-process mode only). */
  stalls?: [number, number][]
}

/** [ns on a CPU, ns runnable but waiting for one] of a process's main thread; null off Linux. */
function schedstat(pid: number): [number, number] | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number)
    return [run, wait]
  } catch {
    return null
  }
}

/** Run-queue wait of `pid` since `from` (taken at `at`), ÷ wall time. */
function queuedSince(pid: number, from: [number, number] | null, at: number): number | null {
  const now = schedstat(pid)
  return now && from ? +((now[1] - from[1]) / 1e6 / (performance.now() - at)).toFixed(3) : null
}

interface Target {
  label: string
  url: string
  reset(): Promise<void>
  stats(): Promise<ProcStats[]>
  close(): Promise<void>
  /** The server processes' last log lines, shown when sockets were lost (cluster mode). */
  logTail?(): string
}

/** One server process, the real startServer, watched from inside over IPC. */
async function singleProcess(): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-signaling-'))
  const child: ChildProcess = fork(SERVER, [], {
    execArgv: ['--import', 'tsx', ...benchWorkerFlags()],
    env: { ...process.env, DATA_DIR: dataDir, MAX_SOCKETS_PER_ADDRESS: String(SOCKET_CAP) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const waiting: ((s: SignalingServerStats) => void)[] = []
  const { url, pid } = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`signaling server exited (${c})`)))
    child.on('message', (m: { ev: string; url: string; pid: number }) => {
      if (m.ev === 'ready') resolve(m)
      else if (m.ev === 'stats') waiting.shift()?.(m as unknown as SignalingServerStats)
    })
  })
  const send = (op: SignalingServerOp) => child.send(op)
  let sched0 = schedstat(pid)
  let at0 = performance.now()
  return {
    label: '1 process', url,
    reset: async () => {
      send({ op: 'reset' })
      sched0 = schedstat(pid)
      at0 = performance.now()
    },
    stats: () => new Promise((resolve) => {
      const queued = queuedSince(pid, sched0, at0)
      waiting.push((s) => resolve([{
        pid, role: 'server', cpu: +s.cpu.toFixed(3), rssMB: r1(s.rss / MB), rssMaxMB: r1(s.rssMax / MB),
        lag: { p50: r1(s.lag.p50), p99: r1(s.lag.p99), max: r1(s.lag.max) }, queued, stalls: s.stalls,
      }]))
      send({ op: 'stats' })
    }),
    close: async () => {
      child.disconnect()
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)])
      child.kill('SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

type StartCluster = (o: { workers: number; redisUrl?: string; env?: Record<string, string> }) => Promise<{ url: string; close(): Promise<void>; workers?: { output(): string }[] }>

/**
 * Event-loop delay inside a cluster's server processes, which the bench does not start itself:
 * imported into each through NODE_OPTIONS (a data: URL, so it needs no loader; the main thread
 * only, not tsx's loader thread). Every 500 ms it writes its delay histogram and RSS peak to
 * SIGNALING_PROBE_DIR/PID.json; SIGUSR2 (sent only to a process whose file exists, so the
 * handler is in place) starts a new phase.
 */
const LAG_PROBE = `import { monitorEventLoopDelay } from "node:perf_hooks"
import { isMainThread } from "node:worker_threads"
import { writeFileSync } from "node:fs"
const dir = process.env.SIGNALING_PROBE_DIR
if (isMainThread && dir) {
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  let rssMax = 0
  const write = () => {
    rssMax = Math.max(rssMax, process.memoryUsage.rss())
    writeFileSync(dir + "/" + process.pid + ".json", JSON.stringify({ p50: h.percentile(50), p99: h.percentile(99), max: h.max, rssMax }))
  }
  process.on("SIGUSR2", () => { h.reset(); rssMax = 0; write() })
  write()
  setInterval(write, 500).unref()
}`
const PROBE_WRITE_MS = 500

/** N server processes with Redis behind haproxy (tools/cluster.ts), watched from /proc. */
async function cluster(workers: number): Promise<Target> {
  if (!existsSync(CLUSTER)) throw new Error(`--processes ${workers}: tools/cluster.ts (startCluster, issue #25) is not in this checkout; only --processes 1 can run`)
  const mod = (await import(pathToFileURL(CLUSTER).href)) as { startCluster?: StartCluster }
  if (typeof mod.startCluster !== 'function') throw new Error(`--processes ${workers}: tools/cluster.ts exports no startCluster`)
  const probeDir = mkdtempSync(join(tmpdir(), 'tabswarm-signaling-probe-'))
  const probe = `--import=data:text/javascript,${encodeURIComponent(LAG_PROBE).replace(/'/g, '%27')}`
  const c = await mod.startCluster({
    workers, redisUrl: argOf('--redis-url'),
    // Every bench socket reaches the processes from haproxy's one address.
    env: { MAX_SOCKETS_PER_ADDRESS: String(SOCKET_CAP), SIGNALING_PROBE_DIR: probeDir, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${probe}`.trim() },
  })
  const probed = () => readdirSync(probeDir).filter((f) => /^\d+\.json$/.test(f)).map((f) => Number(f.slice(0, -5)))
  const probeOf = (pid: number): { p50: number; p99: number; max: number; rssMax: number } | null => {
    try {
      return JSON.parse(readFileSync(join(probeDir, `${pid}.json`), 'utf8'))
    } catch {
      return null
    }
  }
  const beyond = (ns: number) => r1(Math.max(0, ns / 1e6 - 10))
  let before = new Map<number, { ticks: number; at: number; sched: [number, number] | null }>()
  const sampleAll = () => new Map(descendants(process.pid).map((pid) => [pid, procSample(pid)] as const).filter((e): e is [number, NonNullable<ReturnType<typeof procSample>>] => e[1] !== null))
  return {
    label: `${workers} processes`, url: c.url,
    reset: async () => {
      for (const pid of probed()) {
        try {
          process.kill(pid, 'SIGUSR2')
        } catch {
          // gone
        }
      }
      before = new Map([...sampleAll()].map(([pid, s]) => [pid, { ticks: s.ticks, at: performance.now(), sched: schedstat(pid) }]))
    },
    stats: async () => {
      await sleep(PROBE_WRITE_MS + 100) // the probes' files cover the phase's end
      const now = performance.now()
      const out: ProcStats[] = []
      for (const [pid, s] of sampleAll()) {
        const b = before.get(pid)
        const role = roleOf(s.comm, s.cmd)
        if (!b || !role) continue
        const p = probeOf(pid)
        out.push({
          pid, role, cpu: +((s.ticks - b.ticks) / CLK_TCK / ((now - b.at) / 1000)).toFixed(3), rssMB: r1(s.rss / MB), rssMaxMB: p ? r1(p.rssMax / MB) : null,
          lag: p ? { p50: beyond(p.p50), p99: beyond(p.p99), max: beyond(p.max) } : null, queued: queuedSince(pid, b.sched, b.at),
        })
      }
      return out
    },
    logTail: () => (c.workers ?? []).map((w, i) => `worker ${i}:\n${w.output().trim().split('\n').slice(-12).join('\n')}`).join('\n'),
    close: async () => {
      await c.close()
      rmSync(probeDir, { recursive: true, force: true })
    },
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** The processes below `root` (the cluster's servers, haproxy, redis and their wrappers). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)])
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = []
  const queue = [root]
  while (queue.length) for (const c of children.get(queue.shift()!) ?? []) out.push(c), queue.push(c)
  return out
}

function procSample(pid: number): { ticks: number; rss: number; comm: string; cmd: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return {
      ticks: Number(f[11]) + Number(f[12]),
      rss: Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024,
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(),
    }
  } catch {
    return null
  }
}

/** What a cluster process is; null for wrappers (npm, sh, tsx's launcher) whose cost is nil. */
function roleOf(comm: string, cmd: string): string | null {
  if (comm.startsWith('haproxy')) return 'haproxy'
  if (comm.startsWith('redis')) return 'redis'
  if (/signaling-server|server\.ts|main\.ts/.test(cmd) && !/tsx\/dist\/cli|npm|npx/.test(cmd)) return 'server'
  return null
}

// ---- the load generator's own cost (it shares the two cores with the server) ----

const genLag = monitorEventLoopDelay({ resolution: 10 })
genLag.enable()
let genCpu0 = process.cpuUsage()
let genT0 = performance.now()
let genSched0 = schedstat(process.pid)
/** The generator's own loop stalls, as the server's (bench/support/signaling-server.ts), to tell the machine's stalls from the server's. */
let genStalls: [number, number][] = []
let genTick = performance.now()
setInterval(() => {
  const now = performance.now()
  const late = now - genTick - 100
  genTick = now
  if (late > 500 && genStalls.length < 50) genStalls.push([Date.now(), Math.round(late)])
}, 100).unref()
function resetGen() {
  genStalls = []
  genLag.reset()
  genCpu0 = process.cpuUsage()
  genT0 = performance.now()
  genSched0 = schedstat(process.pid)
}
function genStats() {
  const c = process.cpuUsage(genCpu0)
  return {
    cpu: +((c.user + c.system) / 1000 / (performance.now() - genT0)).toFixed(3), lagP99: r1(Math.max(0, genLag.percentile(99) / 1e6 - 10)),
    lagMax: r1(Math.max(0, genLag.max / 1e6 - 10)), stalls: [...genStalls],
    queued: queuedSince(process.pid, genSched0, genT0), rssMB: r1(process.memoryUsage.rss() / MB),
  }
}

// ---- scenarios ----

interface PhaseResult {
  phase: 'ramp' | 'steady'
  seconds: number
  sockets: number
  /** Roster changes the bench caused (readies and leaves; the server batches those within MEMBERSHIP_BATCH_MS). */
  changes: number
  joinToRosterMs: ReturnType<typeof dist>
  signalMs: ReturnType<typeof dist>
  joinFailed: number
  membershipMsgs: number
  /** Membership messages per change ÷ room size: ~1 is linear in the room (each member hears each change once). */
  msgsPerChangePerClient: number
  membershipBytesPerChange: number
  syncs: number
  errors: Record<string, number>
  lost: Record<string, number>
  invalid: number
  eventsPerSocketPerSec: number
  reportsSent: number
  signalsSent: number
  server: ProcStats[]
  generator: ReturnType<typeof genStats>
  loadavg: number[]
}

function phaseResult(phase: PhaseResult['phase'], t: Tally, seconds: number, sockets: number, roomSize: number, changes: number, server: ProcStats[]): PhaseResult {
  const events = Object.values(t.events).reduce((a, n) => a + n, 0)
  return {
    phase, seconds: r1(seconds), sockets, changes,
    joinToRosterMs: dist(t.joinToRoster), signalMs: dist(t.signalMs), joinFailed: t.joinFailed,
    membershipMsgs: t.membershipMsgs,
    msgsPerChangePerClient: changes ? +(t.membershipMsgs / changes / roomSize).toFixed(3) : NaN,
    membershipBytesPerChange: changes ? Math.round(t.membershipBytes / changes) : NaN,
    syncs: t.syncs, errors: t.errors, lost: t.lost, invalid: t.invalid,
    eventsPerSocketPerSec: +(events / Math.max(1, sockets) / seconds).toFixed(2),
    reportsSent: t.reportsSent, signalsSent: t.signalsSent,
    server, generator: genStats(), loadavg: load(),
  }
}

async function runScenario(target: Target, rooms: number, perRoom: number) {
  const n = rooms * perRoom
  const ctx: SwarmContext = { url: target.url, tally: newTally(), reportEveryMs: REPORT_EVERY_MS, signalEveryMs: SIGNAL_EVERY_MS, deltas: true }
  const names = Array.from({ length: rooms }, (_, i) => `bench-${rooms}r-${i}-${tag()}`)
  const live: FakeVolunteer[] = []
  let made = 0
  const volunteer = (room: string) => new FakeVolunteer(ctx, room, `v${made++}`)
  console.log(`  ${target.label}, ${rooms} room(s) × ${perRoom}: ramping ${n} sockets at ${RAMP_PER_SEC}/s`)

  await target.reset()
  resetGen()
  let t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const wait = t0 + (i * 1000) / RAMP_PER_SEC - performance.now()
    if (wait > 0) await sleep(wait)
    live.push(volunteer(names[i % rooms]))
  }
  await Promise.allSettled(live.map((v) => v.rostered))
  const ramp = phaseResult('ramp', ctx.tally, (performance.now() - t0) / 1000, n, perRoom, n, await target.stats())
  const rostered = () => live.filter((v) => v.membership && v.self && v.membership.peers.includes(v.self))
  const inRosterAfterRamp = rostered().length
  console.log(`    ramp: ${inRosterAfterRamp}/${n} in the roster; join→roster p50/p99 ${ramp.joinToRosterMs.p50}/${ramp.joinToRosterMs.p99} ms`)

  // Steady: reports, signals and churn.
  ctx.tally = newTally()
  await target.reset()
  resetGen()
  t0 = performance.now()
  const churnEveryMs = 60_000 / (CHURN_PER_MIN * n)
  let changes = 0
  const joiners: Promise<number>[] = []
  for (let k = 1; k * churnEveryMs <= STEADY_S * 1000; k++) {
    await sleep(t0 + k * churnEveryMs - performance.now())
    const pool = rostered()
    if (!pool.length) break
    const victim = pool[Math.floor(Math.random() * pool.length)]
    live.splice(live.indexOf(victim), 1)
    victim.leave()
    const v = volunteer(victim.room)
    live.push(v)
    joiners.push(v.rostered)
    changes += 2
  }
  await sleep(t0 + STEADY_S * 1000 - performance.now())
  await Promise.allSettled(joiners)
  const steady = phaseResult('steady', ctx.tally, (performance.now() - t0) / 1000, n, perRoom, changes, await target.stats())
  console.log(`    steady: ${changes / 2} churned; join→roster p50/p99 ${steady.joinToRosterMs.p50}/${steady.joinToRosterMs.p99} ms; ` +
    `server ${steady.server.map((s) => `${s.role} cpu ${(s.cpu * 100).toFixed(0)} % rss ${s.rssMB} MB${s.lag ? ` lag p99 ${s.lag.p99} ms` : ''}`).join(', ')}; generator cpu ${(steady.generator.cpu * 100).toFixed(0)} %`)

  const lost = [...Object.keys(ramp.lost), ...Object.keys(steady.lost)]
  if (lost.length && target.logTail) console.log(`    sockets lost (${lost.join(', ')}); the servers' last lines:\n${target.logTail()}`)
  for (const v of live) v.leave()
  await waitFor(() => live.every((v) => v.socket.disconnected), 10_000, 'every bench socket closed').catch(() => {})
  await sleep(1000) // the server has processed the leaves before the next scenario starts
  return { target: target.label, rooms, perRoom, sockets: n, inRosterAfterRamp, phases: [ramp, steady] }
}

/**
 * Membership traffic per change against the room size: one change at a time (the room settles
 * before the next), reports and signals off, so what is counted is membership alone.
 */
async function runSweep(target: Target, deltas: boolean) {
  const rows = []
  for (const size of SWEEP_SIZES) {
    const ctx: SwarmContext = { url: target.url, tally: newTally(), reportEveryMs: 0, signalEveryMs: 0, deltas }
    const room = `sweep-${deltas ? 'd' : 'f'}-${size}-${tag()}`
    let made = 0
    const volunteer = () => new FakeVolunteer(ctx, room, `s${made++}`)
    const members: FakeVolunteer[] = []
    const t0 = performance.now()
    for (let i = 0; i < size; i++) {
      const wait = t0 + (i * 1000) / RAMP_PER_SEC - performance.now()
      if (wait > 0) await sleep(wait)
      members.push(volunteer())
    }
    await Promise.all(members.map((v) => v.rostered))
    const sees = (v: FakeVolunteer, id: string) => !!v.membership?.peers.includes(id)
    await waitFor(() => members.every((v) => v.membership?.peers.length === size), 10_000, `room of ${size} settled`)
    await sleep(MEMBERSHIP_BATCH_MS * 2)

    ctx.tally = newTally()
    await target.reset()
    const w0 = performance.now()
    for (let k = 0; k < SWEEP_CHURNS; k++) {
      const victim = members.splice(Math.floor(Math.random() * members.length), 1)[0]
      const gone = victim.self!
      victim.leave()
      await waitFor(() => members.every((v) => !sees(v, gone)), 10_000, 'a leave announced')
      const v = volunteer()
      await v.rostered
      members.push(v)
      await waitFor(() => members.every((m) => sees(m, v.self!)), 10_000, 'a join announced')
    }
    await sleep(MEMBERSHIP_BATCH_MS * 2)
    const seconds = (performance.now() - w0) / 1000
    const server = await target.stats()
    const changes = 2 * SWEEP_CHURNS
    const t = ctx.tally
    const serverCpuMs = server.filter((s) => s.role === 'server').reduce((a, s) => a + s.cpu, 0) * seconds * 1000
    const row = {
      deltas, roomSize: size, changes, membershipMsgs: t.membershipMsgs, fullMsgs: t.fullMsgs, deltaMsgs: t.deltaMsgs, syncs: t.syncs,
      msgsPerChange: r1(t.membershipMsgs / changes), msgsPerChangePerClient: +(t.membershipMsgs / changes / size).toFixed(3),
      bytesPerChange: Math.round(t.membershipBytes / changes), bytesPerChangePerClient: Math.round(t.membershipBytes / changes / size),
      serverCpuMsPerChange: r1(serverCpuMs / changes), joinToRosterMs: dist(t.joinToRoster), errors: t.errors, invalid: t.invalid,
    }
    rows.push(row)
    console.log(`    sweep ${deltas ? 'deltas' : 'full'} n=${size}: ${row.msgsPerChange} msgs/change (${row.msgsPerChangePerClient} per client), ` +
      `${row.bytesPerChange} B/change (${row.bytesPerChangePerClient} per client), server ${row.serverCpuMsPerChange} ms CPU/change`)
    for (const m of members) m.leave()
    await waitFor(() => members.every((m) => m.socket.disconnected), 10_000, 'sweep sockets closed').catch(() => {})
    await sleep(500)
  }
  return rows
}

type Scenario = Awaited<ReturnType<typeof runScenario>>
type SweepRow = Awaited<ReturnType<typeof runSweep>>[number]

function printTables(scenarios: Scenario[], sweep: { target: string; rows: SweepRow[] }[]) {
  const table = (head: string[], rows: string[][]) => {
    const lines = rows.map((l) => l.map((c) => (c === 'NaN' ? '–' : c)))
    const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
    const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')
    console.log(fmt(head))
    for (const l of lines) console.log(fmt(l))
  }
  console.log('\n(join→roster: join sent → the membership that lists the peer, after its ready; lag beyond the 10 ms timer; cpu in % of one core; queued: share of the phase the server main thread was runnable but waiting for a CPU)')
  table(
    ['target', 'scenario', 'phase', 'sockets', 'j→r n', 'j→r p50', 'j→r p99', 'j→r max', 'fail', 'sig p99', 'srv cpu', 'srv lag p50/p99/max', 'srv queued', 'srv RSS', 'gen cpu', 'gen lag p99', 'msg/chg/client', 'load1'],
    scenarios.flatMap((s) => s.phases.map((p) => {
      const srv = p.server.filter((x) => x.role === 'server')
      return [
        s.target, `${s.rooms} × ${s.perRoom}`, p.phase, String(p.sockets), String(p.joinToRosterMs.n), String(p.joinToRosterMs.p50), String(p.joinToRosterMs.p99), String(p.joinToRosterMs.max),
        String(p.joinFailed), String(p.signalMs.p99), srv.map((x) => (x.cpu * 100).toFixed(0)).join('+'),
        srv.map((x) => (x.lag ? `${x.lag.p50}/${x.lag.p99}/${x.lag.max}` : '–')).join(' '),
        srv.map((x) => (x.queued === null ? '–' : `${(x.queued * 100).toFixed(0)} %`)).join(' '), srv.map((x) => x.rssMB).join('+'),
        (p.generator.cpu * 100).toFixed(0), String(p.generator.lagP99), String(p.msgsPerChangePerClient), String(p.loadavg[0]),
      ]
    })),
  )
  console.log('\n(membership sweep: one change at a time, reports off; bytes = socket.io packet text)')
  table(
    ['target', 'mode', 'room', 'msgs/change', 'per client', 'bytes/change', 'bytes/client', 'srv CPU ms/change', 'syncs'],
    sweep.flatMap((s) => s.rows.map((r) => [
      s.target, r.deltas ? 'deltas' : 'full', String(r.roomSize), String(r.msgsPerChange), String(r.msgsPerChangePerClient),
      String(r.bytesPerChange), String(r.bytesPerChangePerClient), String(r.serverCpuMsPerChange), String(r.syncs),
    ])),
  )
}

export async function runSignalingBench() {
  const loadBefore = load()
  const scenarios: Scenario[] = []
  const sweep: { target: string; rows: SweepRow[] }[] = []
  const failed: { processes: number; error: string }[] = []
  for (const procs of processModes) {
    const start = () => (procs === 1 ? singleProcess() : cluster(procs))
    try {
      for (const sc of SCENARIOS) {
        // A fresh server per scenario: RSS and rooms are the scenario's own.
        const target = await start()
        try {
          scenarios.push(await runScenario(target, sc.rooms, sc.perRoom))
        } finally {
          await target.close()
        }
      }
      if (!SWEEP) continue
      const target = await start()
      try {
        console.log(`  ${target.label}: membership sweep, rooms of ${SWEEP_SIZES.join(', ')}`)
        sweep.push({ target: target.label, rows: [...(await runSweep(target, true)), ...(await runSweep(target, false))] })
      } finally {
        await target.close()
      }
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      console.error(`  ${procs} process(es): FAILED: ${error}`)
      failed.push({ processes: procs, error })
    }
  }
  printTables(scenarios, sweep)
  return {
    parameters: {
      quick, processes: processModes, rampPerSec: RAMP_PER_SEC, steadySeconds: STEADY_S, churnPerMinute: CHURN_PER_MIN,
      reportEveryMs: REPORT_EVERY_MS, signalEveryMs: SIGNAL_EVERY_MS, scenarios: SCENARIOS, sweepSizes: SWEEP_SIZES, sweepChurns: SWEEP_CHURNS,
      rosterDeadlineMs: ROSTER_DEADLINE_MS, membershipBatchMs: MEMBERSHIP_BATCH_MS, maxPeersPerRoom: MAX_PEERS_PER_ROOM,
      serverEnv: { MAX_SOCKETS_PER_ADDRESS: SOCKET_CAP, default: MAX_SOCKETS_PER_ADDRESS },
    },
    note: 'join→roster = join sent → the first membership (full or delta) listing the peer, after its ready; includes the server\'s MEMBERSHIP_BATCH_MS batching. ' +
      'cpu = CPU time ÷ wall time (1 = one core). lag = event-loop delay beyond the 10 ms monitorEventLoopDelay timer. msgsPerChangePerClient = membership messages received by all clients ÷ roster changes ÷ room size.',
    scenarios, sweep, failed, load: { before: loadBefore, after: load() },
  }
}

if (process.argv[1] === SCRIPT) {
  const bound = setTimeout(() => {
    console.error(`signaling bench: over its ${RUN_BOUND_MS / 60_000} min bound; stopping`)
    process.exit(1)
  }, RUN_BOUND_MS)
  bound.unref()
  console.log(`signaling: volunteers' signaling traffic at scale (${quick ? 'quick' : 'full'}; processes ${processModes.join(', ')})`)
  const r = await runSignalingBench()
  const partial = argOf('--rooms') || !SWEEP ? '-partial' : ''
  const suffix = `${partial}${quick ? '-quick' : ''}${argOf('--processes') ? `-p${processModes.join('-')}` : ''}`
  console.log('wrote', writeResult(`signaling${suffix}`, r))
  process.exit(r.failed.length ? 1 : 0)
}
