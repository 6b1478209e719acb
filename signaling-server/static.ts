import { createReadStream, type Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'

/**
 * Serves the built client (dist/). Paths of the single-page app (/host, /room/CODE,
 * /projector/CODE, …) fall back to index.html; hashed assets are cached for a year.
 */

export const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.bin': 'application/octet-stream',
  '.webmanifest': 'application/manifest+json',
}

async function fileStat(path: string): Promise<Stats | null> {
  try {
    const s = await stat(path)
    return s.isFile() ? s : null
  } catch {
    return null
  }
}

function send(res: ServerResponse, req: IncomingMessage, path: string, s: Stats, cache: string): void {
  res.statusCode = 200
  res.setHeader('Content-Type', MIME[extname(path).toLowerCase()] ?? 'application/octet-stream')
  res.setHeader('Content-Length', s.size)
  res.setHeader('Cache-Control', cache)
  res.setHeader('Last-Modified', s.mtime.toUTCString())
  if (req.method === 'HEAD') return void res.end()
  const stream = createReadStream(path)
  stream.on('error', () => res.destroy())
  stream.pipe(res)
}

/** Returns false when the request is not a GET/HEAD (the caller answers 405 or 404). */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, pathname: string, staticDir: string): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false
  const index = join(staticDir, 'index.html')
  const indexStat = await fileStat(index)
  if (!indexStat) {
    res.statusCode = 503
    res.setHeader('Content-Type', 'text/plain; charset=utf-8')
    res.end(`The client is not built (no ${index}). Run \`npm run build\` (or \`npm start\`), then reload.\n`)
    return true
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(pathname)
  } catch {
    decoded = '/'
  }
  const root = normalize(staticDir + sep)
  const path = normalize(join(root, decoded))
  if (path.startsWith(root) && !decoded.includes('\0')) {
    const s = await fileStat(path)
    if (s) {
      const immutable = decoded.startsWith('/assets/')
      send(res, req, path, s, immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      return true
    }
  }
  // Client-side routes have no extension; a missing /x.js must stay a 404, not HTML.
  if (extname(decoded) === '') {
    send(res, req, index, indexStat, 'no-cache')
    return true
  }
  res.statusCode = 404
  res.setHeader('Content-Type', 'text/plain; charset=utf-8')
  res.end('not found\n')
  return true
}
