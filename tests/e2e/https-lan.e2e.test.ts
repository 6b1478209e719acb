import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoomResponse } from '../../shared/protocol/http'
import { GENERATED_CERT_FILE, spkiSha256 } from '../../signaling-server/tls'
import { CHROMIUM_PATH } from '../support/browser'
import { waitFor } from '../support/server'

/**
 * Issue 24, "HTTPS on the LAN": the classroom as it really is, not on loopback. Inside the
 * test's own network namespace (tools/netns-run.sh) a veth pair joins it to a child namespace:
 * the server (the real CLI, `--https --host 10.77.0.1`) listens on 10.77.0.1, and Chromium runs
 * in the child namespace as a student laptop at 10.77.0.2, trusting exactly the generated
 * certificate (--ignore-certificate-errors-spki-list, what accepting the warning does).
 *
 * Over HTTPS each tab is a secure, cross-origin-isolated context with a WebGPU adapter (a
 * software SwiftShader one on this GPU-less machine, with --enable-unsafe-webgpu), and lap-sgd
 * runs several Hogwild workers per tab. The same app over plain http on that address shows the
 * volunteer why (CapabilityNotice) and lap-sgd still trains, with one updater per tab.
 */

const SERVER_IP = '10.77.0.1'
const STUDENT_IP = '10.77.0.2'
const UPDATERS = 2
const HOGWILD_WORKER = /\/assets\/worker-[\w-]{8}\.js$/

interface Cli { proc: ChildProcess; port: number; redirectPort: number | null; output: () => string }

/** Starts `tsx signaling-server/main.ts ARGS` and waits for its startup lines. */
async function startCli(args: string[], dataDir: string): Promise<Cli> {
  const proc = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['signaling-server/main.ts', ...args, '--port', '0', '--data-dir', dataDir], {
    env: { ...process.env, TABSWARM_DIST: process.env.TABSWARM_DIST ?? join(process.cwd(), 'dist') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const started = await waitFor('the server prints its addresses', async () => /data: /.test(out) && out, 60_000, 100)
    .catch((e: Error) => {
      proc.kill('SIGKILL')
      throw new Error(`${e.message}; output: ${out}`)
    })
  const port = Number(/https?:\/\/localhost:(\d+)\//.exec(started)?.[1])
  const redirect = /http:\/\/ on port (\d+) redirects/.exec(started)
  return { proc, port, redirectPort: redirect ? Number(redirect[1]) : null, output: () => out }
}

async function stopCli(cli: Cli | undefined): Promise<void> {
  if (!cli || cli.proc.exitCode !== null) return
  const exited = new Promise((resolve) => cli.proc.once('exit', resolve))
  cli.proc.kill('SIGTERM')
  await exited
}

/** One request from the test process (the server's own namespace), trusting `ca` for https. */
function call(url: string, opts: { method?: string; body?: string; ca?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = opts.body ? { 'content-type': 'application/json' } : undefined
    const done = (res: import('node:http').IncomingMessage) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    }
    const req = url.startsWith('https:')
      ? httpsRequest(url, { method: opts.method ?? 'GET', headers, ca: opts.ca }, done)
      : httpRequest(url, { method: opts.method ?? 'GET', headers }, done)
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** What the page itself says about its context: the facts CapabilityNotice is built from. */
async function pageFacts(page: Page) {
  return page.evaluate(async () => {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: { isFallbackAdapter?: boolean; vendor?: string }; isFallbackAdapter?: boolean } | null> } }).gpu
    let adapter: { fallback: boolean; vendor: string } | null = null
    // requestAdapter() returns null now and then in headless Chromium: a few tries.
    for (let i = 0; gpu && !adapter && i < 3; i++) {
      const a = await gpu.requestAdapter().catch(() => null)
      if (a) adapter = { fallback: Boolean(a.info?.isFallbackAdapter ?? a.isFallbackAdapter), vendor: a.info?.vendor ?? '' }
    }
    return {
      secure: window.isSecureContext,
      isolated: window.crossOriginIsolated,
      sharedMemory: typeof SharedArrayBuffer !== 'undefined',
      hasGpuApi: gpu !== undefined,
      adapter,
    }
  })
}

const hogwildWorkers = (page: Page) => page.workers().filter((w) => HOGWILD_WORKER.test(new URL(w.url()).pathname)).length

describe('HTTPS on the LAN: a veth pair, not loopback', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-https-lan-'))
  let studentNs: ChildProcess
  let browser: Browser
  let https: Cli
  let plain: Cli | undefined
  let cert: string

  beforeAll(async () => {
    // The student's namespace: a process that only holds it (killed in afterAll).
    const ownNs = readlinkSync('/proc/self/ns/net')
    studentNs = spawn('unshare', ['--net', 'sleep', 'infinity'], { stdio: 'ignore' })
    const nsPath = `/proc/${studentNs.pid}/ns/net`
    await waitFor('the student namespace exists', async () => readlinkSync(nsPath) !== ownNs, 10_000, 20)
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' })
    const inStudent = (...a: string[]) => execFileSync('nsenter', [`--net=${nsPath}`, 'ip', ...a], { stdio: 'pipe' })
    ip('link', 'add', 'tsw-srv', 'type', 'veth', 'peer', 'name', 'tsw-stu')
    ip('link', 'set', 'tsw-stu', 'netns', String(studentNs.pid))
    ip('addr', 'add', `${SERVER_IP}/24`, 'dev', 'tsw-srv')
    ip('link', 'set', 'tsw-srv', 'up')
    inStudent('link', 'set', 'lo', 'up')
    inStudent('addr', 'add', `${STUDENT_IP}/24`, 'dev', 'tsw-stu')
    inStudent('link', 'set', 'tsw-stu', 'up')
    // mDNS (224.0.0.251) for the plain-http tabs' ICE candidates: no default route here.
    inStudent('route', 'add', '224.0.0.0/4', 'dev', 'tsw-stu')

    https = await startCli(['--https', '--host', SERVER_IP], join(tmp, 'https-data'))
    cert = readFileSync(join(tmp, 'https-data', GENERATED_CERT_FILE), 'utf8')
    expect(https.output()).toContain(`https://${SERVER_IP}:${https.port}/`)

    // Chromium as a student laptop: started inside the student's namespace.
    const wrapper = join(tmp, 'chromium-in-student-ns')
    writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=${nsPath} ${CHROMIUM_PATH} "$@"\n`)
    chmodSync(wrapper, 0o755)
    browser = await chromium.launch({
      executablePath: wrapper,
      headless: true,
      args: [
        '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${SERVER_IP}`,
        '--enable-unsafe-webgpu',
        // Trust exactly the generated certificate, as a student who accepted the warning does.
        `--ignore-certificate-errors-spki-list=${spkiSha256(cert)}`,
        '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
      ],
    })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await stopCli(https)
    await stopCli(plain)
    studentNs?.kill('SIGKILL')
    rmSync(tmp, { recursive: true, force: true })
  })

  it('over HTTPS: secure, cross-origin isolated, a WebGPU adapter, and lap-sgd with several Hogwild workers per tab', async () => {
    const origin = `https://${SERVER_IP}:${https.port}`
    // The plain-HTTP listener sends students to the HTTPS origin.
    expect(https.redirectPort).not.toBeNull()
    const redirected = await call(`http://${SERVER_IP}:${https.redirectPort}/?room=lan`)
    expect(redirected.status).toBe(307)
    expect(redirected.headers.location).toBe(`${origin}/?room=lan`)

    const room = 'lan-https'
    const created = await call(`${origin}/api/rooms`, { method: 'POST', ca: cert, body: JSON.stringify({ room, config: { algorithm: 'lap-sgd', updaters: UPDATERS } }) })
    expect(created.status, created.body).toBe(201)
    expect(JSON.parse(created.body).joinUrl).toMatch(new RegExp(`^${origin.replace(/\./g, '\\.')}/\\?room=`))
    const info = JSON.parse((await call(`${origin}/api/info`, { ca: cert })).body) as { tls?: string }
    expect(info.tls).toBe('self-signed')

    const pages: Page[] = []
    for (let i = 0; i < 2; i++) {
      const ctx = await browser.newContext()
      // Media permission exposes the tab's real address in ICE (no mDNS names): the two tabs meet over 10.77.0.2.
      await ctx.grantPermissions(['microphone', 'camera'], { origin })
      const page = await ctx.newPage()
      page.on('pageerror', (e) => console.error(`[https tab ${i}]`, e.message))
      await page.goto(`${origin}/?room=${room}&backend=wasm`)
      pages.push(page)
    }
    for (const page of pages) {
      const facts = await pageFacts(page)
      expect(facts).toMatchObject({ secure: true, isolated: true, sharedMemory: true, hasGpuApi: true })
      // No GPU here: SwiftShader's software adapter, which is what --enable-unsafe-webgpu gives.
      expect(facts.adapter).not.toBeNull()
    }

    const url = `${origin}/api/rooms/${room}`
    const training = await waitFor('both HTTPS tabs train lap-sgd', async () => {
      const body = JSON.parse((await call(url, { ca: cert })).body) as RoomResponse
      return body.peers.length === 2 && body.peers.every((p) => p.step > 0) && body
    }, 240_000, 1000)
    for (const p of training.peers) expect(p.updaters).toBe(UPDATERS)
    for (const page of pages) {
      expect(hogwildWorkers(page)).toBeGreaterThanOrEqual(UPDATERS)
      // Only the software adapter is missing; nothing about http or isolation.
      const notice = page.getByTestId('capability-notice')
      if (await notice.count()) {
        const issues = (await notice.getAttribute('data-issues')) ?? ''
        expect(issues).not.toMatch(/insecure-context|not-isolated/)
      }
    }
    // The teacher's page says what students will see with the generated certificate, and how to avoid it.
    const host = await pages[0].context().newPage()
    await host.goto(`${origin}/host`)
    await expect(host.getByTestId('https-notice').textContent()).resolves.toMatch(/self-signed.*TLS_CERT/s)
    for (const page of pages) await page.context().close()
  }, 420_000)

  it('over plain http on the LAN address: the volunteer is told why, and lap-sgd trains with one updater', async () => {
    plain = await startCli(['--host', SERVER_IP], join(tmp, 'http-data'))
    const origin = `http://${SERVER_IP}:${plain.port}`
    const room = 'lan-http'
    const created = await call(`${origin}/api/rooms`, { method: 'POST', body: JSON.stringify({ room, config: { algorithm: 'lap-sgd', updaters: UPDATERS } }) })
    expect(created.status, created.body).toBe(201)

    // No media permission on an insecure page: the tabs find each other through mDNS (.local) candidates, as on a real LAN.
    const ctx = await browser.newContext()
    const pages: Page[] = []
    for (let i = 0; i < 2; i++) {
      const page = await ctx.newPage()
      page.on('pageerror', (e) => console.error(`[http tab ${i}]`, e.message))
      await page.goto(`${origin}/?room=${room}&backend=wasm`)
      pages.push(page)
    }
    for (const page of pages) {
      expect(await pageFacts(page)).toMatchObject({ secure: false, isolated: false, sharedMemory: false, hasGpuApi: false, adapter: null })
      const notice = page.getByTestId('capability-notice')
      await notice.waitFor({ timeout: 120_000 })
      expect(await notice.getAttribute('data-issues')).toContain('insecure-context')
      expect(await notice.textContent()).toMatch(/plain http.*npm start -- --https/s)
    }
    const url = `${origin}/api/rooms/${room}`
    const training = await waitFor('both http tabs train lap-sgd', async () => {
      const body = JSON.parse((await call(url)).body) as RoomResponse
      return body.peers.length === 2 && body.peers.every((p) => p.step > 0) && body
    }, 240_000, 1000)
    for (const p of training.peers) {
      // The fallback: one updater in the tab (before, `lap-sgd needs ctx.hogwild` stopped the tab).
      expect(p.updaters).toBe(1)
      expect(p.capability).toEqual(expect.arrayContaining(['insecure-context', 'not-isolated']))
    }
    for (const page of pages) {
      expect(hogwildWorkers(page)).toBe(0)
      expect(await page.getByTestId('capability-notice').textContent()).toMatch(/one updater in this tab instead of 2 workers/)
    }
    // The dashboard's peer table tags both tabs; the host page tells the teacher how to fix it.
    const dashboard = await ctx.newPage()
    await dashboard.goto(`${origin}/room/${room}`)
    await waitFor('the dashboard tags both http tabs', async () => (await dashboard.getByTestId('capability-tag').filter({ hasText: 'http only' }).count()) === 2, 60_000, 250)
    await dashboard.goto(`${origin}/host`)
    await expect(dashboard.getByTestId('https-notice').textContent()).resolves.toMatch(/plain http.*npm start -- --https/s)
    // Still stepping: the one-updater tabs keep training.
    const before = Math.min(...training.peers.map((p) => p.step))
    await waitFor('the http tabs keep stepping', async () => {
      const body = JSON.parse((await call(url)).body) as RoomResponse
      return body.peers.length === 2 && body.peers.every((p) => p.step > before)
    }, 60_000, 1000)
    await ctx.close()
  }, 420_000)
})
