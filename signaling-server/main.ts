import type { IncomingMessage, ServerResponse } from 'node:http'
import { networkInterfaces } from 'node:os'
import { fileURLToPath } from 'node:url'
import { readSettings, USAGE } from './env'
import { isLoopbackHost, lanAddresses } from './public-origin'
import { startServer } from './server'
import { certificateHosts, loadTls, type TlsMaterial } from './tls'

/** Composition root: `npm start` / `npm run serve` / `npm run dev`. */

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const log = (msg: string) => console.log(`[tabswarm] ${msg}`)

async function devMiddleware(): Promise<{ middleware: (req: IncomingMessage, res: ServerResponse, next: () => void) => void; close: () => Promise<void> }> {
  // Imported only in --dev so `npm start` never loads Vite at runtime.
  const { createServer } = await import('vite')
  const vite = await createServer({
    configFile: `${repoRoot}vite.config.ts`,
    server: { middlewareMode: true, hmr: { port: 24678 } },
    appType: 'spa',
  })
  return { middleware: (req, res, next) => vite.middlewares(req, res, next), close: () => vite.close() }
}

async function main() {
  let settings
  try {
    settings = readSettings(process.argv.slice(2), process.env)
  } catch (err) {
    console.error(`[tabswarm] ${err instanceof Error ? err.message : String(err)}`)
    console.error(USAGE)
    process.exit(2)
  }
  if (settings.help) {
    console.log(USAGE)
    process.exit(0)
  }
  let tls: TlsMaterial | null = null
  if (settings.tls) {
    const hosts = certificateHosts(settings.host === '0.0.0.0' || settings.host === '::' ? lanAddresses(networkInterfaces()) : [settings.host])
    tls = await loadTls({ dataDir: settings.dataDir, hosts, certFile: settings.tls.certFile, keyFile: settings.tls.keyFile })
  }
  const dev = settings.dev ? await devMiddleware() : null
  const server = await startServer({
    port: settings.port,
    host: settings.host,
    dataDir: settings.dataDir,
    // TABSWARM_DIST: the same override the build uses (vite.config.ts), for side-by-side builds.
    staticDir: process.env.TABSWARM_DIST || `${repoRoot}dist`,
    log,
    middleware: dev?.middleware,
    publicUrl: settings.publicUrl,
    tls: tls && { key: tls.key, cert: tls.cert, selfSigned: tls.source !== 'files' },
    redirectPort: settings.tls?.httpPort ?? null,
    ice: settings.ice,
    redisUrl: settings.redisUrl,
  })
  const scheme = server.secure ? 'https' : 'http'
  const lines = [`tabswarm is running${settings.dev ? ' (dev mode)' : ''}. Open:`, `  ${scheme}://localhost:${server.port}/`]
  const shared = settings.publicUrl ?? server.lanUrl
  if (shared) lines.push(`  ${shared}/   (students: join links and QR codes use this${settings.publicUrl ? ', from PUBLIC_URL' : ''})`)
  else lines.push('  (no LAN address: students on other machines cannot reach this server; set HOST=0.0.0.0 or PUBLIC_URL)')
  if (settings.publicUrl && isLoopbackHost(new URL(settings.publicUrl).hostname)) lines.push('  warning: PUBLIC_URL is a loopback address; only this machine can open it')
  lines.push(`  host a class: ${scheme}://localhost:${server.port}/host`, settings.redisUrl ? '  rooms: in Redis (REDIS_URL), shared with the other processes' : `  data: ${settings.dataDir}`)
  if (tls) lines.push(...tlsLines(tls, server.redirectPort))
  else if (shared && !settings.publicUrl?.startsWith('https:')) lines.push('  plain HTTP: LAN tabs get no WebGPU and no lap-sgd workers; `npm start -- --https` serves HTTPS (see --help)')
  if (settings.ice.turn) lines.push(`  TURN: ${settings.ice.turn.urls.join(' ')} (credentials for ${settings.ice.turn.ttlSec} s, renewed before expiry)`)
  console.log(lines.join('\n'))

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: shutting down`)
    await server.close()
    await dev?.close()
    process.exit(0)
  }
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGTERM', () => void stop('SIGTERM'))
}

function tlsLines(tls: TlsMaterial, redirectPort: number | null): string[] {
  const out = tls.source === 'files'
    ? [`  HTTPS with the certificate from TLS_CERT (${tls.names.join(', ')})`]
    : [
        `  HTTPS with a self-signed certificate (${tls.source === 'reused' ? 'reused from' : 'generated into'} ${tls.certPath}) for ${tls.names.join(', ')}:`,
        '  browsers warn once per device; set TLS_CERT/TLS_KEY to a real certificate to avoid it',
        `  certificate SHA-256 (SPKI): ${tls.spkiSha256}`,
      ]
  if (redirectPort !== null) out.push(`  http:// on port ${redirectPort} redirects to HTTPS`)
  return out
}

main().catch((err) => {
  console.error('[tabswarm] failed to start:', err instanceof Error ? err.message : err)
  process.exit(1)
})
