import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import os from 'node:os'

/** Where every benchmark writes its JSON (committed results live here too). */
export const RESULTS_DIR = join(process.cwd(), 'bench', 'results')

export function machine(): Record<string, unknown> {
  return { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1), platform: process.platform }
}

/** 1/5/15-minute load averages: the machine is shared, so every result records how busy it was. */
export function load(): number[] {
  return os.loadavg().map((x) => +x.toFixed(2))
}

export function writeResult(name: string, result: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}.json`)
  writeFileSync(file, JSON.stringify({ name, at: new Date().toISOString(), machine: machine(), loadavg: load(), result }, null, 2))
  return file
}

/**
 * Extra Node flags for forked bench workers, from the environment:
 *   BENCH_CPU_PROF=DIR            every worker writes a V8 CPU profile there on exit
 *   BENCH_NODE_FLAGS="--trace-gc" any other flags (workers then show their stdout)
 */
export function benchWorkerFlags(): string[] {
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  return [...prof, ...(process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [])]
}

/**
 * BENCH_ALLOC_PROF=DIR: this worker samples every allocation (including objects that die young)
 * for BENCH_ALLOC_PROF_SECONDS (10) starting BENCH_ALLOC_PROF_DELAY_S (30) after start, and
 * writes the V8 sampling heap profile to DIR (a .heapprofile, loadable in Chrome DevTools).
 * Unlike --heap-prof, which keeps only what is still alive, this shows what the GC has to chase.
 * BENCH_ALLOC_PROF_MINOR=0 leaves out what dies young: what is left was promoted to old space
 * (or is still alive), which is what drives full collections.
 */
export function maybeSampleAllocations(name: string): void {
  const dir = process.env.BENCH_ALLOC_PROF
  if (!dir) return
  const delay = Number(process.env.BENCH_ALLOC_PROF_DELAY_S ?? 30) * 1000
  const span = Number(process.env.BENCH_ALLOC_PROF_SECONDS ?? 10) * 1000
  setTimeout(async () => {
    const { Session } = await import('node:inspector/promises')
    const session = new Session()
    session.connect()
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.BENCH_ALLOC_PROF_MINOR !== '0',
    })
    setTimeout(async () => {
      const { profile } = await session.post('HeapProfiler.stopSampling')
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, `${name}-${process.pid}.heapprofile`), JSON.stringify(profile))
      session.disconnect()
    }, span).unref()
  }, delay).unref()
}

/** The value after `--name` on the command line, or undefined. */
export function argOf(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

/** Nearest-rank percentile (`p` in %, e.g. 99): an observed value, NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN
}

/**
 * WebRTC benchmarks must run inside the loopback-only namespace (tools/netns-run.sh sets
 * TABSWARM_NETNS=1). Called first thing: if we are outside, re-runs this very script inside the
 * wrapper and exits with its status; returns normally when already inside (or with
 * TABSWARM_NO_NETNS=1, where the wrapper is a no-op).
 */
export async function ensureNetns(script: string): Promise<void> {
  if (process.env.TABSWARM_NETNS === '1' || process.env.TABSWARM_NO_NETNS === '1') return
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync('sh', ['tools/netns-run.sh', process.execPath, '--import', 'tsx', script, ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}

/** Starts the real signaling server on a free port with a throw-away data directory. */
export async function benchServer(): Promise<{ url: string; close(): Promise<void> }> {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { startServer } = await import('../signaling-server/server')
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-bench-'))
  const s = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: join(dataDir, 'dist'), log: () => {} })
  return { url: s.url, close: async () => { await s.close(); rmSync(dataDir, { recursive: true, force: true }) } }
}

/**
 * BENCH_MEM_PROF=1: this worker samples process.memoryUsage() every 5 ms for 5 s, starting
 * BENCH_ALLOC_PROF_DELAY_S (30) after start, and prints how fast `external` and `arrayBuffers`
 * grow (sum of the increases, per second) and how many full GCs ran. External memory that grows
 * fast makes V8 start old-space collections no matter how small the JS heap is.
 */
export function maybeSampleMemory(name: string): void {
  if (!process.env.BENCH_MEM_PROF) return
  const delay = Number(process.env.BENCH_ALLOC_PROF_DELAY_S ?? 30) * 1000
  setTimeout(async () => {
    const { PerformanceObserver, constants } = await import('node:perf_hooks')
    let major = 0
    let minor = 0
    const obs = new PerformanceObserver((l) => {
      for (const e of l.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++
        else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++
      }
    })
    obs.observe({ entryTypes: ['gc'] })
    let prev = process.memoryUsage()
    let ext = 0
    let ab = 0
    const t0 = Date.now()
    const timer = setInterval(() => {
      const m = process.memoryUsage()
      ext += Math.max(0, m.external - prev.external)
      ab += Math.max(0, m.arrayBuffers - prev.arrayBuffers)
      prev = m
      if (Date.now() - t0 >= 5000) {
        clearInterval(timer)
        obs.disconnect()
        const s = (Date.now() - t0) / 1000
        console.error(`[mem ${name} ${process.pid}] external +${(ext / s / 1e6).toFixed(1)} MB/s, arrayBuffers +${(ab / s / 1e6).toFixed(1)} MB/s, now external ${(m.external / 1e6).toFixed(1)} MB, heapUsed ${(m.heapUsed / 1e6).toFixed(1)} MB; GCs in ${s.toFixed(1)} s: ${major} major, ${minor} minor`)
      }
    }, 5)
    timer.unref()
  }, delay).unref()
}
