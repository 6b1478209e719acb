import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isKeyPeerId } from '../../shared/identity'
import type { RoomResponse } from '../../shared/protocol/http'
import { startServer, type RunningServer } from '../../signaling-server/server'
import { CHROMIUM_PATH } from '../support/browser'
import { createRoom, roomUrl } from '../support/e2e'
import { getJson, waitFor } from '../support/server'

/**
 * A plain-http LAN page is no secure context: no crypto.subtle, no Web Locks. As in
 * https-lan.e2e.test.ts, a veth pair joins the test's namespace to a child one: the server listens
 * on 10.78.0.1 over plain http and Chromium runs in the child namespace as a student laptop, so
 * the page really is insecure. The tab must still join under a proven key id (pure-JS P-256,
 * IndexedDB leases: client/identity/browser-identity.ts), keep it and its credit across a reload,
 * and a second tab of the same browser must get an id of its own.
 */

const SERVER_IP = '10.78.0.1'
const STUDENT_IP = '10.78.0.2'
const CONFIG = { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', totalSteps: 200_000, stepDeadlineMs: 15_000 }
const room = async (url: string) => (await getJson<RoomResponse>(url)).body
const ledgerOf = (r: RoomResponse, id: string) => r.leaderboard.find((e) => e.id === id)?.samples ?? 0

describe('identity on a plain-http LAN page (not a secure context)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-insecure-id-'))
  let studentNs: ChildProcess
  let browser: Browser
  let server: RunningServer

  beforeAll(async () => {
    const ownNs = readlinkSync('/proc/self/ns/net')
    studentNs = spawn('unshare', ['--net', 'sleep', 'infinity'], { stdio: 'ignore' })
    const nsPath = `/proc/${studentNs.pid}/ns/net`
    await waitFor('the student namespace exists', async () => readlinkSync(nsPath) !== ownNs, 10_000, 20)
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' })
    const inStudent = (...a: string[]) => execFileSync('nsenter', [`--net=${nsPath}`, 'ip', ...a], { stdio: 'pipe' })
    // Names and subnet of its own: https-lan.e2e.test.ts may run beside this file in one namespace.
    ip('link', 'add', 'tsw-id-srv', 'type', 'veth', 'peer', 'name', 'tsw-id-stu')
    ip('link', 'set', 'tsw-id-stu', 'netns', String(studentNs.pid))
    ip('addr', 'add', `${SERVER_IP}/24`, 'dev', 'tsw-id-srv')
    ip('link', 'set', 'tsw-id-srv', 'up')
    inStudent('link', 'set', 'lo', 'up')
    inStudent('addr', 'add', `${STUDENT_IP}/24`, 'dev', 'tsw-id-stu')
    inStudent('link', 'set', 'tsw-id-stu', 'up')
    // mDNS (224.0.0.251) for an insecure tab's ICE candidates: no default route here.
    inStudent('route', 'add', '224.0.0.0/4', 'dev', 'tsw-id-stu')

    server = await startServer({ port: 0, host: SERVER_IP, dataDir: join(tmp, 'data'), staticDir: process.env.TABSWARM_DIST ?? join(process.cwd(), 'dist') })

    const wrapper = join(tmp, 'chromium-in-student-ns')
    writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=${nsPath} ${CHROMIUM_PATH} "$@"\n`)
    chmodSync(wrapper, 0o755)
    browser = await chromium.launch({
      executablePath: wrapper,
      headless: true,
      args: [
        '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${SERVER_IP}`,
        '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
      ],
    })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    studentNs?.kill('SIGKILL')
    rmSync(tmp, { recursive: true, force: true })
  })

  it('a reloaded tab keeps its k- id and its credit; a second tab gets its own id', async () => {
    const origin = `http://${SERVER_IP}:${server.port}`
    const created = await createRoom({ url: origin }, { config: CONFIG })
    const url = roomUrl({ url: origin }, created.room)
    // One browser profile: both tabs share IndexedDB, as two tabs on a student's laptop do.
    const ctx = await browser.newContext()
    const open = async (): Promise<Page> => {
      const page = await ctx.newPage()
      page.on('pageerror', (e) => console.error('[tab] pageerror', e.message))
      await page.goto(`${origin}/?room=${encodeURIComponent(created.room)}&backend=wasm`)
      return page
    }
    const page = await open()
    expect(await page.evaluate(() => [window.isSecureContext, typeof crypto.subtle, typeof navigator.locks])).toEqual([false, 'undefined', 'undefined'])
    const first = await waitFor('the tab training and credited', async () => {
      const body = await room(url)
      const p = body.peers[0]
      return p && p.step > 0 && ledgerOf(body, p.id) > 0 && body
    }, 120_000)
    const id = first.peers[0].id
    // Without the pure-JS signer this would be the socket id.
    expect(isKeyPeerId(id)).toBe(true)

    // Another tab of the same browser: its own slot, its own key (one shared id would never make two peers).
    const second = await open()
    const both = await waitFor('the second tab in the roster', async () => {
      const body = await room(url)
      return body.peers.length === 2 && body
    }, 120_000)
    const otherId = both.peers.map((p) => p.id).find((p) => p !== id)!
    expect(isKeyPeerId(otherId)).toBe(true)
    await second.close()

    const credited = ledgerOf(await room(url), id)
    expect(credited).toBeGreaterThan(0)
    await page.reload()
    const back = await waitFor('the reloaded tab back in the roster', async () => {
      const body = await room(url)
      return body.peers.some((p) => p.id === id && p.step > 0) && body
    }, 120_000)
    expect(back.peers.filter((p) => p.id === id)).toHaveLength(1)
    expect(back.peers.every((p) => isKeyPeerId(p.id))).toBe(true)
    expect(ledgerOf(back, id)).toBeGreaterThanOrEqual(credited)
    await waitFor('credit growing after the reload', async () => ledgerOf(await room(url), id) > credited, 60_000)
    await ctx.close()
  }, 420_000)
})
