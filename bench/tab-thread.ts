import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchBrowser } from '../tests/support/browser'
import { getJson, startTestServer } from '../tests/support/server'
import { argOf, ensureNetns, load, median, writeResult } from './common'
import { openTrainingTabs } from './tabs'

/**
 * How responsive a training tab's page thread stays, with the model on a Web Worker (the default
 * on wasm/cpu) vs on the page thread (?compute=main): 2 real headless Chromium tabs train the cnn
 * on MNIST with dpsgd on a ring over real WebRTC; inside a common window each page records how
 * late a 50 ms timer fires (what a click, a repaint or a data-channel message waits for) and
 * its long tasks (> 50 ms, PerformanceObserver), and the server's room state gives steps/s.
 * The two modes alternate (worker, main, worker, main …) so the VM's drift spreads over both.
 *   npm run build && sh tools/netns-run.sh npx tsx bench/tab-thread.ts [--quick] [--repeat K] [--tabs N] [--model cnn|mlp]
 * (--tabs 1: a tab alone in its room, so the model's speed on each thread without the other tab's contention.)
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)
const quick = process.argv.includes('--quick')
const repeat = Math.max(1, Number(argOf('--repeat') ?? (quick ? 1 : 2)))
const windowMs = quick ? 10_000 : 20_000
const TABS = Math.max(1, Number(argOf('--tabs') ?? 2))
// --model: the room's model on MNIST (default the cnn; the mlp is the default room's model).
const MODEL = argOf('--model') ?? 'cnn'
if (MODEL !== 'cnn' && MODEL !== 'mlp') {
  console.error(`--model must be cnn or mlp, got ${MODEL}`)
  process.exit(2)
}
if (!existsSync(join(process.cwd(), 'dist', 'index.html'))) {
  console.error('bench/tab-thread.ts serves the built client: run `npm run build` first')
  process.exit(1)
}

type Mode = 'worker' | 'main'
type PageSample = { lagsMs: number[]; longTasksMs: number[] }
type ApiPeer = { name?: string; step: number; stepsPerSec?: number; computeThread?: string | null }

/** Runs inside the page: timer lateness every 50 ms and long tasks, for `ms`. */
function sampleInPage(ms: number): Promise<PageSample> {
  return new Promise((resolve) => {
    const lagsMs: number[] = []
    const longTasksMs: number[] = []
    let last = performance.now()
    const iv = setInterval(() => {
      const now = performance.now()
      lagsMs.push(Math.max(0, now - last - 50))
      last = now
    }, 50)
    let obs: PerformanceObserver | null = null
    try {
      obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) longTasksMs.push(e.duration) })
      obs.observe({ type: 'longtask', buffered: false })
    } catch { /* no longtask support: lags still say it */ }
    setTimeout(() => (clearInterval(iv), obs?.disconnect(), resolve({ lagsMs, longTasksMs })), ms)
  })
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN
}

const server = await startTestServer()
const browser = await launchBrowser()
const rows: Record<string, unknown>[] = []
try {
  for (let rep = 0; rep < repeat; rep++) for (const mode of ['worker', 'main'] as Mode[]) {
    const room = `tab-thread-${mode}-${rep}`
    const config = { model: MODEL, dataset: 'mnist', algorithm: 'dpsgd', topology: 'ring', batchSize: 32, totalSteps: 100000, partition: 'iid' }
    const pages = await openTrainingTabs(server.url, browser, { room, config, tabs: TABS, query: `&compute=${mode}` })
    const url = `${server.url}/api/rooms/${room}`
    // The page thread's busy time from Chromium itself (CDP Performance.getMetrics, seconds):
    // TaskDuration is everything that thread ran, ScriptDuration its JavaScript, and
    // Layout/RecalcStyle the rendering the UI asked for.
    const cdps = await Promise.all(pages.map(async (p) => {
      const c = await p.context().newCDPSession(p)
      await c.send('Performance.enable')
      return c
    }))
    const metrics = () => Promise.all(cdps.map(async (c) => {
      const { metrics: m } = await c.send('Performance.getMetrics')
      const get = (n: string) => m.find((x) => x.name === n)?.value ?? 0
      return { task: get('TaskDuration'), script: get('ScriptDuration'), render: get('LayoutDuration') + get('RecalcStyleDuration') }
    }))
    const before = (await getJson<{ peers: ApiPeer[] }>(url)).body.peers
    const m0 = await metrics()
    const t0 = Date.now()
    const samples = await Promise.all(pages.map((p) => p.evaluate(sampleInPage, windowMs)))
    const seconds = (Date.now() - t0) / 1000
    const m1 = await metrics()
    const after = (await getJson<{ peers: ApiPeer[] }>(url)).body.peers
    const steps = after.map((p) => p.step - (before.find((q) => q.name === p.name)?.step ?? p.step))
    const busy = (k: 'task' | 'script' | 'render') => m1.reduce((a, m, i) => a + m[k] - m0[i][k], 0) / TABS / seconds
    const lags = samples.flatMap((s) => s.lagsMs)
    const longs = samples.flatMap((s) => s.longTasksMs)
    const row = {
      mode, rep, tabs: TABS, windowS: +seconds.toFixed(1),
      computeThread: after.map((p) => p.computeThread ?? null),
      stepsPerSecPerTab: +(steps.reduce((a, b) => a + b, 0) / TABS / seconds).toFixed(2),
      timerLagMs: { median: +median(lags).toFixed(1), p95: +pct(lags, 0.95).toFixed(1), max: +Math.max(...lags).toFixed(1) },
      // Share of one core the page thread kept busy (model included when it runs there).
      pageThreadBusy: { task: +busy('task').toFixed(3), script: +busy('script').toFixed(3), render: +busy('render').toFixed(3) },
      longTasks: { perSecPerTab: +(longs.length / TABS / seconds).toFixed(2), medianMs: longs.length ? +median(longs).toFixed(0) : 0, maxMs: +(longs.length ? Math.max(...longs) : 0).toFixed(0) },
    }
    console.log(`  ${mode} (rep ${rep}, model on ${row.computeThread.join('/')}): ${row.stepsPerSecPerTab} steps/s per tab; page timer late by median ${row.timerLagMs.median} ms, p95 ${row.timerLagMs.p95} ms, max ${row.timerLagMs.max} ms; long tasks ${row.longTasks.perSecPerTab}/s per tab (median ${row.longTasks.medianMs} ms, max ${row.longTasks.maxMs} ms); page thread busy ${(row.pageThreadBusy.task * 100).toFixed(0)} % of a core (script ${(row.pageThreadBusy.script * 100).toFixed(0)} %, layout+style ${(row.pageThreadBusy.render * 100).toFixed(1)} %)`)
    rows.push(row)
    for (const p of pages) await p.context().close()
  }
} finally {
  await browser.close()
  await server.close()
}
console.log('wrote', writeResult((quick ? 'tab-thread-quick' : 'tab-thread') + (MODEL === 'cnn' ? '' : `-${MODEL}`) + (TABS === 2 ? '' : `-${TABS}tabs`), { model: MODEL, dataset: 'mnist', algorithm: 'dpsgd', backend: 'wasm', tabs: TABS, rows, load: load() }))
process.exit(0)
