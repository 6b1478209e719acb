import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { readSettings } from './env'
import { isLoopbackHost } from './public-origin'
import { startServer } from './server'

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
    process.exit(2)
  }
  const dev = settings.dev ? await devMiddleware() : null
  const server = await startServer({
    port: settings.port,
    host: settings.host,
    dataDir: settings.dataDir,
    staticDir: `${repoRoot}dist`,
    log,
    middleware: dev?.middleware,
    publicUrl: settings.publicUrl,
  })
  const lines = [`tabswarm is running${settings.dev ? ' (dev mode)' : ''}. Open:`, `  http://localhost:${server.port}/`]
  const shared = settings.publicUrl ?? server.lanUrl
  if (shared) lines.push(`  ${shared}/   (students: join links and QR codes use this${settings.publicUrl ? ', from PUBLIC_URL' : ''})`)
  else lines.push('  (no LAN address: students on other machines cannot reach this server; set HOST=0.0.0.0 or PUBLIC_URL)')
  if (settings.publicUrl && isLoopbackHost(new URL(settings.publicUrl).hostname)) lines.push('  warning: PUBLIC_URL is a loopback address; only this machine can open it')
  lines.push(`  host a class: http://localhost:${server.port}/host`, `  data: ${settings.dataDir}`)
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

main().catch((err) => {
  console.error('[tabswarm] failed to start:', err instanceof Error ? err.message : err)
  process.exit(1)
})
