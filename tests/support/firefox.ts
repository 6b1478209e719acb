import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { existsSync } from 'node:fs'

/**
 * Headless Firefox for the e2e tests: Debian's firefox-esr driven by puppeteer-core over WebDriver
 * BiDi (no browser download). puppeteer-core creates a temporary profile with these preferences
 * and removes it on close. Like Chromium, it runs inside the loopback-only namespace
 * (tools/netns-run.sh), so its WebRTC has nothing but 127.0.0.1 to gather.
 */
export const FIREFOX_PATH = ['/usr/bin/firefox-esr', '/usr/lib/firefox-esr/firefox-esr', '/usr/bin/firefox'].find((p) => existsSync(p)) ?? '/usr/bin/firefox-esr'

/**
 * Preferences a volunteer tab needs inside a loopback-only namespace. A page that holds no
 * camera/microphone permission gathers only the "default address" (the one a route to the
 * internet would use: there is none in the namespace, so zero candidates and ICE fails) with its
 * host part hidden behind an mDNS name. Allowing both permissions by default is Firefox's
 * counterpart of the media permission tests/support/browser.ts grants Chromium; `ice.loopback`
 * then keeps the 127.0.0.1 candidates that Firefox otherwise filters out.
 */
export const FIREFOX_WEBRTC_PREFS: Record<string, unknown> = {
  'media.peerconnection.enabled': true,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.no_host': false,
  'media.peerconnection.ice.default_address_only': false,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.link_local': true,
  'media.peerconnection.ice.proxy_only': false,
  'permissions.default.microphone': 1,
  'permissions.default.camera': 1,
  'media.navigator.permission.disabled': true,
  'media.navigator.streams.fake': true,
  // Several tabs share two cores: keep background tabs and their timers at full speed.
  'dom.min_background_timeout_value': 4,
  'dom.timeout.enable_budget_timer_throttling': false,
  'dom.timeout.throttling_delay': 0,
  // No start-up traffic to Mozilla's services (there is no network in the namespace anyway).
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'browser.safebrowsing.update.enabled': false,
  'app.update.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
}

export async function launchFirefox(extraPrefs: Record<string, unknown> = {}): Promise<Browser> {
  return puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: FIREFOX_PATH,
    headless: true,
    extraPrefsFirefox: { ...FIREFOX_WEBRTC_PREFS, ...extraPrefs },
    // Firefox refuses to run as root without a HOME it owns; the profile is puppeteer's temp dir.
    env: { ...process.env, HOME: process.env.HOME ?? '/tmp', MOZ_HEADLESS: '1' },
    timeout: 120_000,
    protocolTimeout: 180_000,
  })
}

/**
 * Record every RTCPeerConnection the page makes before its scripts run, so the test reads the
 * browser's own getStats() instead of the app's counters (tests/support/browser.ts does the same
 * for Chromium).
 */
export async function recordPeerConnections(page: Page): Promise<void> {
  // A string, not a function: the test's transpiler may wrap a function's classes in helpers
  // (esbuild's `__name`) that do not exist in the page.
  await page.evaluateOnNewDocument(`(() => {
    const Native = window.RTCPeerConnection
    const all = []
    window.__pcs = all
    window.RTCPeerConnection = class extends Native {
      constructor(cfg) {
        super(cfg)
        all.push(this)
      }
    }
  })()`)
}

/** Data-channel payload bytes of every recorded RTCPeerConnection, from getStats(). */
export async function firefoxDataChannelBytes(page: Page): Promise<{ sent: number; received: number; connections: number }> {
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
        /* closed connection: its stats are gone, the counts are then lower bounds */
      }
    }
    return { sent, received, connections: pcs.length }
  })
}

/** Close the browser; if BiDi no longer answers, kill the process so no Firefox outlives the test. */
export async function closeFirefox(browser: Browser | undefined): Promise<void> {
  if (!browser) return
  const proc = browser.process()
  try {
    await Promise.race([browser.close(), new Promise((_, reject) => setTimeout(() => reject(new Error('close timed out')), 30_000))])
  } catch {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL')
  }
}
