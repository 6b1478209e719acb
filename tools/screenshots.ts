/**
 * Screenshots for docs/screenshots (the server runs with a public URL, as a classroom server
 * started with PUBLIC_URL would, so join links and QR codes show a LAN address): a live 4-peer DPSGD room (one student slowed
 * down by the host, so the fault tag shows), then /host (control page), /projector/CODE and
 * /room/CODE at 1920x1080, and /host, /room/CODE and a student's tab at phone width (390 px). Run inside the loopback netns after a build:
 *   npm run build && sh tools/netns-run.sh npx tsx tools/screenshots.ts [outDir]
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../signaling-server/server'
import { launchBrowser, volunteerContext } from '../tests/support/browser'
import { cleanup, getJson, waitFor } from '../tests/support/server'

const out = process.argv[2] ?? 'docs/screenshots'
const NAMES = ['Ada', 'Grace', 'Alan', 'Katherine']

const PUBLIC_URL = 'https://192.168.1.20:8080'
const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-shots-'))
const started = await startServer({
  port: 0, host: '127.0.0.1', dataDir, publicUrl: PUBLIC_URL, log: () => {},
  staticDir: process.env.TABSWARM_DIST ?? join(process.cwd(), 'dist'),
})
const server = { url: started.url, dataDir, close: () => started.close() }
const browser = await launchBrowser()
try {
  const hostCtx = await browser.newContext({ viewport: { width: 1920, height: 1080 } })
  const host = await hostCtx.newPage()
  await host.goto(`${server.url}/host`)
  // Long enough to outlast the script, short enough for a believable time-left estimate.
  await host.getByLabel('Training steps').fill('800')
  await host.getByText('Advanced settings').click()
  await host.getByLabel('Neighbour deadline (ms)').fill('15000')
  await host.getByText('Advanced settings').click()
  await host.screenshot({ path: `${out}/host-create.png` })
  await host.getByRole('button', { name: 'Create room' }).click()
  const code = ((await host.getByTestId('join-code').textContent()) ?? '').trim()
  const students = []
  for (const name of NAMES) {
    const ctx = await volunteerContext(browser, server.url)
    const page = await ctx.newPage()
    await page.goto(`${server.url}/?room=${code}&backend=wasm&name=${name}`)
    students.push(page)
  }
  // The room waits for the teacher's Start (the host page's default).
  await host.getByRole('status').filter({ hasText: 'Waiting for your Start: 4 students are ready' }).waitFor({ timeout: 120_000 })
  await host.getByRole('button', { name: 'Start', exact: true }).click()
  await waitFor('4 peers above 80 %', async () => {
    const { body } = await getJson<{ peers: { accuracy: number | null }[] }>(`${server.url}/api/rooms/${code}`)
    return body.peers.length === 4 && body.peers.every((p) => (p.accuracy ?? 0) > 0.8)
  }, 240_000, 1000)
  // The host's fault injection, as a teacher would show it: Katherine's laptop slowed down ×4.
  const { body } = await getJson<{ peers: { id: string; name?: string }[] }>(`${server.url}/api/rooms/${code}`)
  await host.getByLabel('Peer', { exact: true }).selectOption(body.peers.find((p) => p.name === 'Katherine')!.id)
  await host.getByRole('button', { name: 'Slow down' }).click()
  const view = await browser.newContext({ viewport: { width: 1920, height: 1080 } })
  const projector = await view.newPage()
  await projector.goto(`${server.url}/projector/${code}`)
  const dash = await view.newPage()
  await dash.goto(`${server.url}/room/${code}`)
  await new Promise((r) => setTimeout(r, 6000))
  await host.screenshot({ path: `${out}/host.png` })
  await projector.screenshot({ path: `${out}/projector.png` })
  await dash.screenshot({ path: `${out}/dashboard.png` })
  await dash.screenshot({ path: `${out}/dashboard-full.png`, fullPage: true })
  // Phone width: what a student or a teacher walking around the room sees.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } })
  for (const hostToken of await host.evaluate(() => Object.entries(localStorage).filter(([k]) => k.startsWith('tabswarm:hostToken:')))) {
    await phone.addInitScript(([k, v]) => localStorage.setItem(k, v), hostToken)
  }
  const phoneHost = await phone.newPage()
  await phoneHost.goto(`${server.url}/host?room=${code}`)
  const phoneDash = await phone.newPage()
  await phoneDash.goto(`${server.url}/room/${code}`)
  await new Promise((r) => setTimeout(r, 4000))
  await phoneHost.screenshot({ path: `${out}/host-phone.png`, fullPage: true })
  await phoneDash.screenshot({ path: `${out}/dashboard-phone.png`, fullPage: true })
  await students[3].setViewportSize({ width: 390, height: 844 })
  await students[3].screenshot({ path: `${out}/volunteer-phone.png`, fullPage: true })
  console.log(`screenshots of room ${code} written to ${out}`)
} finally {
  await browser.close()
  await server.close()
  cleanup(server.dataDir)
}
