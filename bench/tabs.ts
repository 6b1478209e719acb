import type { Browser, Page } from 'playwright-core'
import { volunteerContext } from '../tests/support/browser'
import { getJson, waitFor } from '../tests/support/server'

/**
 * Creates `room` with `config` and opens `tabs` volunteer tabs in it (each its own browser
 * context, wasm backend, names t0, t1, …, plus `query`), resolving once every tab is past step 5.
 * The browser benchmarks' common setup (bench/tab-thread.ts, bench/tab-profile.ts).
 */
export async function openTrainingTabs(serverUrl: string, browser: Browser, o: { room: string; config: Record<string, unknown>; tabs: number; query?: string }): Promise<Page[]> {
  const res = await fetch(`${serverUrl}/api/rooms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: o.room, config: o.config }) })
  if (!res.ok) throw new Error(`create room: ${res.status} ${await res.text()}`)
  const pages: Page[] = []
  for (let i = 0; i < o.tabs; i++) {
    const page = await (await volunteerContext(browser, serverUrl)).newPage()
    await page.goto(`${serverUrl}/?room=${o.room}&backend=wasm&name=t${i}${o.query ?? ''}`)
    pages.push(page)
  }
  await waitFor(`${o.tabs} tabs past step 5 (${o.room})`, async () => {
    const { body } = await getJson<{ peers: { step: number }[] }>(`${serverUrl}/api/rooms/${o.room}`)
    return body.peers.length === o.tabs && body.peers.every((p) => p.step >= 5)
  }, 180_000, 500)
  return pages
}
