import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../../signaling-server/server'

export interface TestServer {
  url: string
  port: number
  dataDir: string
  close(): Promise<void>
  restart(): Promise<TestServer>
}

/** The real server on an ephemeral loopback port, serving the built client from dist/ (or TABSWARM_DIST). */
export async function startTestServer(dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-')), port = 0): Promise<TestServer> {
  const s = await startServer({ port, host: '127.0.0.1', dataDir, staticDir: process.env.TABSWARM_DIST ?? join(process.cwd(), 'dist'), log: () => {} })
  const self: TestServer = {
    url: s.url,
    port: s.port,
    dataDir,
    close: async () => {
      await s.close()
    },
    restart: async () => {
      await s.close()
      return startTestServer(dataDir, s.port)
    },
  }
  return self
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

export async function getJson<T = unknown>(url: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url)
  return { status: r.status, body: (await r.json()) as T }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 500): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}
