import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { benchWorkerFlags, median } from './common'
import { splitThreads, threadCpuMs, type ThreadSplit } from './threads'

/** Drives N headless Node volunteers (bench/swarm-peer.ts, one OS process each) in one room. */

const WORKER = fileURLToPath(new URL('./swarm-peer.ts', import.meta.url))
type Sample = { t: number; step: number; samples: number; bytesSent: number; bytesReceived: number; stage: string; cpuMs?: number; evalMs?: number }

export function forkWorker(args: string[], env?: Record<string, string>, nodeFlags: string[] = []): ChildProcess {
  return fork(WORKER, args, {
    env: env ? { ...process.env, ...env } : process.env,
    execArgv: ['--import', 'tsx', ...benchWorkerFlags(), ...nodeFlags], serialization: 'advanced',
    // Worker stdout only when asked for diagnostics (--trace-gc and the like print there).
    stdio: ['ignore', process.env.BENCH_NODE_FLAGS ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  })
}

/** Aggregate CPU counters of the machine (/proc/stat's first line, in clock ticks); null off Linux. */
export function procStat(): number[] | null {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  } catch {
    return null
  }
}

/** Where the machine's CPU time went between two procStat() readings, in % of all cores. */
export type MachineShare = { busyPct: number; idlePct: number; stealPct: number }
export function machineShare(a: number[] | null, b: number[] | null): MachineShare | undefined {
  if (!a || !b) return undefined
  const d = b.map((x, i) => x - (a[i] ?? 0))
  const total = d.slice(0, 8).reduce((s, x) => s + x, 0) || 1
  // user nice system idle iowait irq softirq steal
  const idle = d[3] + d[4]
  const steal = d[7] ?? 0
  const pct = (x: number) => +((x / total) * 100).toFixed(1)
  return { busyPct: pct(total - idle - steal), idlePct: pct(idle), stealPct: pct(steal) }
}

export interface PeerResult {
  name: string
  stepsInWindow: number
  stepsPerSec: number
  /** Training examples this peer processed per second inside the window (÷ batch = minibatch updates/s). */
  samplesPerSec: number
  finalStep: number
  /** Longest time between two successive step increases inside the window (stall detector). */
  maxGapS: number
  medianStepS: number
  bytesSentPerStep: number
  bytesSent: number
  /**
   * CPU time this peer's process used inside the window (all its threads) per training example,
   * in ms: unlike wall time it does not move when another tenant takes the VM's cores.
   */
  cpuMsPerSample: number
  /** CPU time inside the window ÷ window length: 1 = one core kept busy. */
  cpuCores: number
  /** Share of the window this peer spent measuring test accuracy (no training meanwhile). */
  evalShare: number
  /**
   * The same CPU time split by thread, per training example, in ms (Linux only): main = session,
   * mesh and mixing; compute = the busiest other thread (the tfjs worker); rest = V8 helpers and
   * WebRTC threads. Taken at the window's edges, so it is a little less exact than cpuMsPerSample.
   */
  threadMsPerSample?: ThreadSplit
  errors: string[]
}

/**
 * Creates a room with `config` on `serverUrl`, starts `n` workers, lets them train for
 * `seconds` after every peer has made `warmSteps` steps (or after `startupS` at most), and
 * measures each peer inside that common window.
 */
export async function runSwarm(serverUrl: string, opts: {
  n: number; config: Record<string, unknown>; seconds: number; warmSteps?: number; startupS?: number; label: string
  /** Extra environment for the peer processes (e.g. TABSWARM_COMPUTE_THREAD). */
  env?: Record<string, string>
  /** Extra Node/V8 flags for these peers only (e.g. --single-threaded-gc). */
  nodeFlags?: string[]
}): Promise<{ room: string; startupS: number; windowS: number; peers: PeerResult[]; serverStats?: unknown; machine?: MachineShare }> {
  const res = await fetch(`${serverUrl}/api/rooms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: `bench-${opts.label}-${process.pid}`, config: opts.config }) })
  if (!res.ok) throw new Error(`create room: ${res.status} ${await res.text()}`)
  const room = ((await res.json()) as { room: string }).room
  const samples: Sample[][] = []
  const errors: string[][] = []
  const kids: ChildProcess[] = []
  const t0 = Date.now()
  for (let i = 0; i < opts.n; i++) {
    samples.push([])
    errors.push([])
    const k = forkWorker(['swarm', serverUrl, room, `${opts.label}-${i}`], opts.env, opts.nodeFlags)
    k.on('message', (m: { ev: string; samples?: Sample[]; error?: string }) => {
      if (m.ev === 'samples') samples[i].push(...m.samples!)
      if (m.ev === 'error') errors[i].push(String(m.error))
    })
    kids.push(k)
  }
  const warm = opts.warmSteps ?? 3
  const lastStep = (i: number) => samples[i].at(-1)?.step ?? 0
  const startupLimit = Date.now() + (opts.startupS ?? 120) * 1000
  while (Date.now() < startupLimit && !samples.every((_, i) => lastStep(i) >= warm)) await new Promise((r) => setTimeout(r, 250))
  const wStart = Date.now()
  const stat0 = procStat()
  const thr0 = kids.map((k) => (k.pid ? threadCpuMs(k.pid) : null))
  const startupS = (wStart - t0) / 1000
  await new Promise((r) => setTimeout(r, opts.seconds * 1000))
  const wEnd = Date.now()
  const stat1 = procStat()
  const thr1 = kids.map((k) => (k.pid ? threadCpuMs(k.pid) : null))
  await Promise.all(kids.map((k) => new Promise<void>((resolve) => {
    const timer = setTimeout(() => (k.kill('SIGKILL'), resolve()), 5000)
    k.once('exit', () => (clearTimeout(timer), resolve()))
    k.send({ op: 'stop' })
  })))
  let serverStats: unknown
  try { serverStats = await (await fetch(`${serverUrl}/api/rooms/${encodeURIComponent(room)}`)).json() } catch { /* informative only */ }
  const peers = samples.map((ss, i): PeerResult => {
    const at = (t: number) => [...ss].reverse().find((s) => s.t <= t)
    const a = at(wStart) ?? { t: wStart, step: 0, samples: 0, bytesSent: 0, bytesReceived: 0, stage: '', cpuMs: 0 }
    const b = at(wEnd) ?? a
    const inWin = ss.filter((s) => s.t >= wStart && s.t <= wEnd)
    const gaps: number[] = []
    // Gaps are measured inside the window: a peer's last pre-window sample may be from long
    // before it (startup), which is not a stall of the running swarm.
    let prev = wStart
    let prevStep = a.step
    for (const s of inWin) if (s.step > prevStep) (gaps.push((s.t - prev) / 1000), (prev = s.t), (prevStep = s.step))
    gaps.push((wEnd - prev) / 1000)
    const steps = b.step - a.step
    const split = kids[i].pid ? splitThreads(kids[i].pid!, thr0[i], thr1[i]) : undefined
    const examples = b.samples - a.samples
    const perEx = (ms: number) => +(ms / Math.max(1, examples)).toFixed(3)
    return {
      name: `${opts.label}-${i}`, stepsInWindow: steps, stepsPerSec: +(steps / ((wEnd - wStart) / 1000)).toFixed(3),
      samplesPerSec: +((b.samples - a.samples) / ((wEnd - wStart) / 1000)).toFixed(1),
      finalStep: ss.at(-1)?.step ?? 0, maxGapS: +Math.max(...gaps).toFixed(2), medianStepS: +median(gaps.slice(0, -1)).toFixed(3),
      bytesSentPerStep: steps ? Math.round((b.bytesSent - a.bytesSent) / steps) : 0, bytesSent: ss.at(-1)?.bytesSent ?? 0,
      // The samples bracketing the window are at step changes, not exactly at wStart/wEnd: CPU and
      // examples are both taken between those two samples, so their ratio is exact.
      cpuMsPerSample: b.samples > a.samples ? +(((b.cpuMs ?? 0) - (a.cpuMs ?? 0)) / (b.samples - a.samples)).toFixed(3) : 0,
      cpuCores: b.t > a.t ? +(((b.cpuMs ?? 0) - (a.cpuMs ?? 0)) / (b.t - a.t)).toFixed(3) : 0,
      evalShare: b.t > a.t ? +(((b.evalMs ?? 0) - (a.evalMs ?? 0)) / (b.t - a.t)).toFixed(4) : 0,
      threadMsPerSample: split && { mainMs: perEx(split.mainMs), busiestOtherMs: perEx(split.busiestOtherMs), restMs: perEx(split.restMs) },
      errors: errors[i].slice(0, 3),
    }
  })
  return { room, startupS: +startupS.toFixed(1), windowS: +((wEnd - wStart) / 1000).toFixed(1), peers, serverStats, machine: machineShare(stat0, stat1) }
}

export function plainLoop(model: string, batch: number, seconds: number): Promise<{ backend: string; localStepsPerSec: number; gradientStepsPerSec: number; paramCount: number }> {
  return new Promise((resolve, reject) => {
    const k = forkWorker(['plain', model, String(batch), String(seconds)])
    k.on('message', (m: { ev: string }) => m.ev === 'plain' && resolve(m as never))
    k.on('exit', (c) => c !== 0 && reject(new Error(`plain worker exited ${c}`)))
  })
}
