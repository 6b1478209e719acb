import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type RunningServer } from './server'

/**
 * The real server on port 0 serving a small built client: precompressed variants, cache rules,
 * the 404 page for paths that are not app routes, and CORS on the read-only routes only.
 * Node's fetch decodes bodies itself and hides Content-Encoding's effect on size, so the
 * encoding checks use node:http, which hands back the raw bytes.
 */

const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-static-'))
const staticDir = join(tmp, 'dist')
const APP_JS = `export const big = ${JSON.stringify('tabswarm '.repeat(2000))}\n`
mkdirSync(join(staticDir, 'assets'), { recursive: true })
mkdirSync(join(staticDir, 'tfjs-wasm'), { recursive: true })
writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>tabswarm</title>')
writeFileSync(join(staticDir, 'assets', 'app-abc123.js'), APP_JS)
writeFileSync(join(staticDir, 'assets', 'app-abc123.js.br'), brotliCompressSync(APP_JS))
writeFileSync(join(staticDir, 'assets', 'app-abc123.js.gz'), gzipSync(APP_JS))
writeFileSync(join(staticDir, 'tfjs-wasm', 'tfjs-backend-wasm.wasm'), new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))

let server: RunningServer

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1', dataDir: join(tmp, 'data'), staticDir })
})
afterAll(async () => {
  await server?.close()
  rmSync(tmp, { recursive: true, force: true })
})

function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('static files', () => {
  it('sends the brotli variant to browsers that accept it, gzip to others, identity otherwise', async () => {
    const br = await raw('/assets/app-abc123.js', { 'accept-encoding': 'gzip, deflate, br' })
    expect(br.headers['content-encoding']).toBe('br')
    expect(br.headers['vary']).toMatch(/accept-encoding/i)
    expect(br.headers['content-type']).toMatch(/^text\/javascript; charset=utf-8/)
    expect(br.body.length).toBeLessThan(APP_JS.length / 10)
    expect(brotliDecompressSync(br.body).toString()).toBe(APP_JS)
    const gz = await raw('/assets/app-abc123.js', { 'accept-encoding': 'gzip' })
    expect(gz.headers['content-encoding']).toBe('gzip')
    const plain = await raw('/assets/app-abc123.js')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body.toString()).toBe(APP_JS)
  })

  it('caches hashed assets for a year, revalidates the shell and the wasm binaries with ETags', async () => {
    const asset = await raw('/assets/app-abc123.js')
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    const wasm = await raw('/tfjs-wasm/tfjs-backend-wasm.wasm')
    expect(wasm.headers['content-type']).toBe('application/wasm')
    expect(wasm.headers['cache-control']).toBe('no-cache')
    const etag = wasm.headers['etag'] as string
    expect(etag).toBeTruthy()
    const again = await raw('/tfjs-wasm/tfjs-backend-wasm.wasm', { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    const shell = await raw('/room/ABC234')
    expect(shell.headers['cache-control']).toBe('no-cache')
  })

  it('puts the isolation headers on every file, so the page is cross-origin isolated', async () => {
    for (const path of ['/', '/assets/app-abc123.js', '/tfjs-wasm/tfjs-backend-wasm.wasm', '/no/such/page']) {
      const r = await raw(path, { 'accept-encoding': 'br' })
      expect(r.headers['cross-origin-opener-policy'], path).toBe('same-origin')
      expect(r.headers['cross-origin-embedder-policy'], path).toBe('require-corp')
      expect(r.headers['cross-origin-resource-policy'], path).toBe('same-origin')
    }
  })

  it('answers paths that are not app routes with a 404 page linking home', async () => {
    for (const path of ['/nope', '/rooms/ABC', '/host/extra', '/room/', '/assets/missing.js', '/favicon.ico']) {
      const r = await fetch(server.url + path)
      expect(r.status, path).toBe(404)
      expect(r.headers.get('content-type'), path).toMatch(/^text\/html/)
      const html = await r.text()
      expect(html, path).toContain('Page not found')
      expect(html, path).toContain('href="/"')
    }
    const evil = await fetch(`${server.url}/%3Cscript%3Ealert(1)%3C%2Fscript%3E`)
    expect(evil.status).toBe(404)
    expect(await evil.text()).not.toContain('<script>')
    for (const path of ['/', '/host', '/host/', '/room/ABC234', '/projector/ABC234/', '/?room=demo']) {
      const r = await fetch(server.url + path)
      expect(r.status, path).toBe(200)
      expect(await r.text(), path).toContain('<title>tabswarm</title>')
    }
  })
})

describe('CORS on the read-only routes', () => {
  let room: string
  beforeAll(async () => {
    const r = await fetch(`${server.url}/api/rooms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(r.status).toBe(201)
    room = ((await r.json()) as { room: string }).room
  })

  it('lets any origin read the room view, its history and the model files', async () => {
    for (const path of [`/api/rooms/${room}`, `/api/rooms/${room}/history`, `/api/rooms/${room}/model.json`, `/api/rooms/${room}/model.weights.bin`, `/api/rooms/${room}/model?format=tfjs`]) {
      const r = await fetch(server.url + path, { headers: { origin: 'https://codepen.io' } })
      expect(r.headers.get('access-control-allow-origin'), path).toBe('*')
      // A cross-origin-isolated notebook (COEP) may only load what opts in.
      expect(r.headers.get('cross-origin-resource-policy'), path).toBe('cross-origin')
      expect(r.headers.get('access-control-expose-headers'), path).toContain('X-Tabswarm-Step')
    }
    const pre = await fetch(`${server.url}/api/rooms/${room}/model.json`, {
      method: 'OPTIONS', headers: { origin: 'https://codepen.io', 'access-control-request-method': 'GET' },
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get('access-control-allow-origin')).toBe('*')
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET, HEAD')
  })

  it('gives control routes no CORS headers, and no preflight approval', async () => {
    const control = await fetch(`${server.url}/api/rooms/${room}/control`, {
      method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: '{"action":"pause"}',
    })
    expect(control.status).toBe(401)
    expect(control.headers.get('access-control-allow-origin')).toBeNull()
    const create = await fetch(`${server.url}/api/rooms`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: '{}' })
    expect(create.headers.get('access-control-allow-origin')).toBeNull()
    const del = await fetch(`${server.url}/api/rooms/${room}`, { method: 'DELETE', headers: { origin: 'https://evil.example' } })
    expect(del.headers.get('access-control-allow-origin')).toBeNull()
    for (const path of [`/api/rooms/${room}/control`, '/api/rooms']) {
      const pre = await fetch(server.url + path, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
      expect(pre.headers.get('access-control-allow-origin'), path).toBeNull()
      expect(pre.headers.get('access-control-allow-methods'), path).toBeNull()
    }
    const preDelete = await fetch(`${server.url}/api/rooms/${room}`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'DELETE' } })
    expect(preDelete.headers.get('access-control-allow-methods')).not.toContain('DELETE')
    // The app's own files stay same-origin.
    expect((await fetch(`${server.url}/assets/app-abc123.js`)).headers.get('access-control-allow-origin')).toBeNull()
  })
})
