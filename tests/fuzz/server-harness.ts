import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { healthResponseSchema } from '../../shared/protocol/http'
import { startServer, type RunningServer } from '../../signaling-server/server'

/**
 * The real server for the socket and HTTP targets: on an ephemeral loopback port, a fresh data
 * dir, and a tiny built client of its own (the fuzzers must not depend on `npm run build`). Its
 * log is watched: a handler or route that threw logs here, and that fails the target.
 */

export interface FuzzServer {
  server: RunningServer
  url: string
  /** Log lines that mean a handler, a route or persistence failed (each one fails the target). */
  failures: string[]
  logLines: number
  close(): Promise<void>
}

/**
 * What the server logs when something it handles threw (signaling-server/handlers.ts, http-api.ts,
 * server.ts). Anchored at the start: other lines quote what clients sent (a suspect's reason).
 */
const FAILURE_LOG = [
  /^handler '.*' failed/,
  /^membership broadcast failed/,
  /^disconnect cleanup failed/,
  /^join verification failed/,
  /^request .* failed/,
  /^[A-Z]+ \S* failed:/,
  /^persistence error/,
]

export async function startFuzzServer(): Promise<FuzzServer> {
  const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-fuzz-'))
  const staticDir = join(tmp, 'dist')
  mkdirSync(join(staticDir, 'assets'), { recursive: true })
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>tabswarm</title>')
  writeFileSync(join(staticDir, 'assets', 'app.js'), 'export {}')
  writeFileSync(join(staticDir, 'favicon.ico'), new Uint8Array([0, 0, 1, 0]))
  const failures: string[] = []
  const self: FuzzServer = {
    server: null as unknown as RunningServer,
    url: '',
    failures,
    logLines: 0,
    async close() {
      await self.server.close()
      rmSync(tmp, { recursive: true, force: true })
    },
  }
  const log = (msg: string) => {
    self.logLines++
    if (FAILURE_LOG.some((re) => re.test(msg)) && failures.length < 50) failures.push(msg)
  }
  self.server = await startServer({ port: 0, host: '127.0.0.1', dataDir: join(tmp, 'data'), staticDir, log, lanAddresses: [] })
  self.url = self.server.url
  return self
}

/** After the cases: the server still answers /healthz with its schema; null when it does, else why not. */
export async function healthProblem(url: string): Promise<string | null> {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) })
    if (r.status !== 200) return `/healthz answered ${r.status}`
    const body = healthResponseSchema.safeParse(await r.json())
    return body.success ? null : `/healthz body: ${body.error.message}`
  } catch (err) {
    return `/healthz did not answer: ${String(err)}`
  }
}
