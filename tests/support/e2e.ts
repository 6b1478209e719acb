import { afterAll, beforeAll } from 'vitest'
import type { Browser } from 'playwright-core'
import { launchBrowser } from './browser'
import { cleanup, startTestServer, type TestServer } from './server'

/**
 * The setup every browser e2e file shares: a real server on an ephemeral port (fresh data dir)
 * and one headless Chromium, both torn down after the file. Call it inside `describe`; read
 * `env.server` / `env.browser` inside tests (they exist once beforeAll has run). A test that
 * restarts the server assigns the new one to `env.server` so the teardown closes that one.
 */
export function e2eEnvironment(): { server: TestServer; browser: Browser } {
  const env = {} as { server: TestServer; browser: Browser }
  beforeAll(async () => {
    env.server = await startTestServer()
    env.browser = await launchBrowser()
  })
  afterAll(async () => {
    await env.browser?.close()
    await env.server?.close()
    if (env.server) cleanup(env.server.dataDir)
  })
  return env
}
