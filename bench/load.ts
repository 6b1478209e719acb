import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Request } from 'playwright-core'
import { CHROMIUM_PATH } from '../tests/support/browser'
import { argOf, ensureNetns, load, median, writeResult } from './common'

/**
 * Page loads (docs/benchmarks.md "Page loads"): what a volunteer tab costs to open, fresh (empty
 * cache) and returning (the same browser profile again, as after a reload or the next lesson),
 * in bytes over the wire and in time from navigation to its first training step.
 *
 * The server is the real CLI (`signaling-server/main.ts`) of the checkout given by --repo (default
 * this one), serving that checkout's dist/, so the code before a change can be measured from a
 * `git worktree` of it. Bytes come from Chromium's own network events (Playwright's
 * request.sizes(), read from CDP Network.* including the tab's workers): headers plus encoded
 * body as received, 0 for a cache hit. Each repeat is a new browser profile on disk (a
 * persistent context): an incognito context's in-memory cache skips large responses such as
 * the datasets, which a student's real profile keeps. A tab trains alone in its room
 * (mlp/MNIST, wasm), so only the load is measured, not the swarm.
 *   npm run build && npm run bench -- load [--repeat K] [--repo DIR] [--label NAME]
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)
const repo = resolve(argOf('--repo') ?? process.cwd())
const label = argOf('--label') ?? 'current'
const repeat = Math.max(1, Number(argOf('--repeat') ?? (process.argv.includes('--quick') ? 1 : 3)))
const STEP_DEADLINE_MS = 240_000
if (!existsSync(join(repo, 'dist', 'index.html'))) {
  console.error(`bench/load.ts serves ${repo}/dist: run \`npm run build\` there first`)
  process.exit(1)
}

type Kind = 'shell' | 'app' | 'wasm' | 'data' | 'api'
const KINDS: Kind[] = ['shell', 'app', 'wasm', 'data', 'api']

function kindOf(url: string): Kind {
  const p = new URL(url).pathname
  if (p.startsWith('/assets/')) return 'app'
  if (p.startsWith('/tfjs-wasm/') || p.endsWith('.wasm')) return 'wasm'
  if (p.startsWith('/data/')) return 'data'
  if (p.startsWith('/api/') || p.startsWith('/socket.io/')) return 'api'
  return 'shell'
}

interface Visit {
  msToFirstStep: number
  bytes: number
  /** Requests the page and its workers made, cache hits included. */
  requests: number
  bytesByKind: Record<Kind, number>
}

/** Starts the checkout's server CLI on a free loopback port; resolves once it prints its address. */
async function startServer(dataDir: string): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'signaling-server/main.ts', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], {
    cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TABSWARM_DIST: '' },
  })
  let out = ''
  return new Promise((ok, fail) => {
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /http:\/\/localhost:(\d+)\//.exec(out)
      if (m) ok({ url: `http://127.0.0.1:${m[1]}`, proc })
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => fail(new Error(`server exited (${code}): ${out}`)))
  })
}

/** Opens the volunteer page in `ctx` and waits for its first training step. */
async function visit(ctx: BrowserContext, url: string): Promise<Visit> {
  const seen: Request[] = []
  const onRequest = (r: Request) => void seen.push(r)
  ctx.on('requestfinished', onRequest)
  const page = await ctx.newPage()
  const t0 = performance.now()
  await page.goto(url)
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="stat-step"]')?.textContent ?? 0) > 0, null, { timeout: STEP_DEADLINE_MS, polling: 50 })
  const msToFirstStep = performance.now() - t0
  ctx.off('requestfinished', onRequest)
  const bytesByKind = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
  let bytes = 0
  for (const r of seen) {
    const s = await r.sizes().catch(() => null)
    if (!s) continue
    const n = s.responseHeadersSize + s.responseBodySize
    bytes += n
    bytesByKind[kindOf(r.url())] += n
  }
  await page.close({ runBeforeUnload: true })
  return { msToFirstStep, bytes, requests: seen.length, bytesByKind }
}

const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-load-'))
const server = await startServer(dataDir)
/** tests/support/browser.ts's flags, for a persistent (on-disk) profile. */
const ARGS = [
  '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost', '--allow-loopback-in-peer-connection',
]
const fresh: Visit[] = []
const returning: Visit[] = []
try {
  for (let r = 0; r < repeat; r++) {
    const room = `load-${r}`
    const created = await fetch(`${server.url}/api/rooms`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room, config: { model: 'mlp', dataset: 'mnist', totalSteps: 100000 } }),
    })
    if (created.status !== 201) throw new Error(`POST /api/rooms: ${created.status} ${await created.text()}`)
    // One profile per repeat: its HTTP cache starts empty (fresh) and is kept for the return.
    const profile = join(dataDir, `profile-${r}`)
    const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, args: ARGS })
    await ctx.grantPermissions(['microphone', 'camera'], { origin: server.url })
    const url = `${server.url}/?room=${room}&backend=wasm`
    fresh.push(await visit(ctx, url))
    returning.push(await visit(ctx, url))
    await ctx.close()
    rmSync(profile, { recursive: true, force: true })
    const f = fresh[r]
    const b = returning[r]
    console.log(`${label} #${r}: fresh ${(f.bytes / 1024).toFixed(0)} KiB ${(f.msToFirstStep / 1000).toFixed(1)} s; returning ${(b.bytes / 1024).toFixed(0)} KiB ${(b.msToFirstStep / 1000).toFixed(1)} s (${b.requests} requests)`)
  }
} finally {
  server.proc.kill('SIGTERM')
  rmSync(dataDir, { recursive: true, force: true })
}

const summary = (vs: Visit[]) => ({
  medianKiB: +(median(vs.map((v) => v.bytes)) / 1024).toFixed(0),
  medianSecondsToFirstStep: +(median(vs.map((v) => v.msToFirstStep)) / 1000).toFixed(2),
  medianKiBByKind: Object.fromEntries(KINDS.map((k) => [k, +(median(vs.map((v) => v.bytesByKind[k])) / 1024).toFixed(0)])),
  requests: median(vs.map((v) => v.requests)),
})
const file = writeResult(`load-${label}`, { repo, label, repeat, page: 'volunteer (/?room=R&backend=wasm)', fresh: summary(fresh), returning: summary(returning), runs: { fresh, returning }, loadavgAfter: load() })
console.log(JSON.stringify({ fresh: summary(fresh), returning: summary(returning) }, null, 2))
console.log(`wrote ${file}`)
