import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { existsSync } from 'node:fs'

/**
 * Headless Chromium as verified on these machines: Debian chromium driven
 * by playwright-core (no browser download), loopback ICE candidates allowed, background
 * networking off, WebGPU enabled. Tests run inside a loopback-only netns (tools/netns-run.sh).
 */
export const CHROMIUM_PATH = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p)) ?? '/usr/bin/chromium'

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost',
      '--allow-loopback-in-peer-connection', '--enable-unsafe-webgpu',
      // Several tabs share two cores: keep background tabs running at full speed.
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
    ],
  })
}

/**
 * A volunteer context: media permission granted (without it Chromium gathers no loopback ICE
 * candidates), and every RTCPeerConnection recorded so the test can read getStats() itself
 * instead of trusting the app's counters.
 */
export async function volunteerContext(browser: Browser, origin: string): Promise<BrowserContext> {
  const ctx = await browser.newContext()
  await ctx.grantPermissions(['microphone', 'camera'], { origin })
  await ctx.addInitScript(() => {
    const Native = window.RTCPeerConnection
    const all: RTCPeerConnection[] = []
    ;(window as unknown as { __pcs: RTCPeerConnection[] }).__pcs = all
    class Recorded extends Native {
      constructor(cfg?: RTCConfiguration) {
        super(cfg)
        all.push(this)
      }
    }
    window.RTCPeerConnection = Recorded as typeof RTCPeerConnection
  })
  return ctx
}

/** Data-channel payload bytes of every RTCPeerConnection the page ever made, from getStats(). */
export async function dataChannelBytes(page: Page): Promise<{ sent: number; received: number; connections: number }> {
  return page.evaluate(async () => {
    const pcs = (window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? []
    let sent = 0
    let received = 0
    for (const pc of pcs) {
      try {
        const stats = await pc.getStats()
        stats.forEach((s) => {
          if (s.type === 'data-channel') {
            sent += s.bytesSent ?? 0
            received += s.bytesReceived ?? 0
          }
        })
      } catch {
        /* closed connection: its stats are gone, the counts below are then lower bounds */
      }
    }
    return { sent, received, connections: pcs.length }
  })
}
