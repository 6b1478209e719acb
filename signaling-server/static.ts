import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join } from 'node:path'
import sirv, { type RequestHandler } from 'sirv'
import { isAppRoute } from '../shared/routes'

/**
 * Serves the built client (dist/) with sirv: the brotli/gzip variants that tools/precompress.mjs
 * writes beside each file at build time, ETags (a returning tab revalidates with a 304 and no
 * body), and these cache rules:
 *   /assets/*     content-hashed names (Vite): cached for a year, immutable
 *   /tfjs-wasm/*  the tfjs wasm binaries keep their package names, so they are revalidated
 *                 (no-cache + ETag) rather than cached blind: a returning tab pays one round
 *                 trip and no bytes, and after a tfjs upgrade never runs an old binary under the
 *                 new JS glue that is bundled into a hashed asset
 *   the rest      (index.html, the app shell of every route) revalidated the same way
 * The app's routes (shared/routes.ts) get index.html; any other missing path a 404 page.
 */

const IMMUTABLE = 'public, max-age=31536000, immutable'
const REVALIDATE = 'no-cache'

/** Text types with their charset; sirv's own table (mrmime) gives a bare `text/javascript`. */
const TEXT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
}

function setHeaders(res: ServerResponse, pathname: string): void {
  res.setHeader('Cache-Control', pathname.startsWith('/assets/') ? IMMUTABLE : REVALIDATE)
  const text = TEXT_TYPES[extname(pathname).toLowerCase()]
  if (text) res.setHeader('Content-Type', text)
}

/** The 404 page: self-contained (no script, no assets), so it works whatever is broken. */
export function notFoundPage(pathname: string): string {
  const shown = pathname.length > 200 ? `${pathname.slice(0, 200)}…` : pathname
  const escaped = shown.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>Page not found · tabswarm</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:12vh auto;padding:0 1.5rem}code{word-break:break-all}a{font-weight:600}</style>
</head><body><h1>Page not found</h1>
<p>There is no page at <code>${escaped}</code> on this tabswarm server.</p>
<p><a href="/">Join a room</a> · <a href="/host">Host a room</a></p>
</body></html>
`
}

function sendNotFound(req: IncomingMessage, res: ServerResponse, pathname: string): void {
  const body = notFoundPage(pathname)
  res.statusCode = 404
  res.setHeader('Content-Type', 'text/html; charset=utf-8')
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** sirv indexes the directory once; the index is rebuilt when a new build replaces index.html. */
let cached: { dir: string; mtimeMs: number; handler: RequestHandler } | null = null

function handlerFor(dir: string, mtimeMs: number): RequestHandler {
  if (cached && cached.dir === dir && cached.mtimeMs === mtimeMs) return cached.handler
  const handler = sirv(dir, { dev: false, etag: true, brotli: true, gzip: true, extensions: [], setHeaders })
  cached = { dir, mtimeMs, handler }
  return handler
}

/** Returns false when the request is not a GET/HEAD (the caller answers 405). */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, pathname: string, staticDir: string): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false
  const index = join(staticDir, 'index.html')
  const indexStat = await stat(index).catch(() => null)
  if (!indexStat?.isFile()) {
    res.statusCode = 503
    res.setHeader('Content-Type', 'text/plain; charset=utf-8')
    res.end(`The client is not built (no ${index}). Run \`npm run build\` (or \`npm start\`), then reload.\n`)
    return true
  }
  const handler = handlerFor(staticDir, indexStat.mtimeMs)
  // sirv reads the path from req.url: an app route is answered with the app shell.
  if (isAppRoute(pathname)) req.url = '/index.html'
  handler(req, res, () => sendNotFound(req, res, pathname))
  return true
}
