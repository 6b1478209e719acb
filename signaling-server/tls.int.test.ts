import { mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { io as connect } from 'socket.io-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { nextEvent } from '../tests/support/socket-events'
import { readSettings } from './env'
import { startServer, type RunningServer } from './server'
import { certificateHosts, GENERATED_KEY_FILE, loadTls, type TlsMaterial } from './tls'

/**
 * `--https` end to end on loopback: a certificate generated once into DATA_DIR and reused, the
 * HTTPS server with its isolation headers, socket.io over TLS, and the plain-HTTP redirect.
 * Clients trust exactly the generated certificate (`ca`), as a browser does once the student
 * accepts it.
 */

const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-tls-'))
const staticDir = join(tmp, 'dist')
mkdirSync(staticDir, { recursive: true })
writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>tabswarm</title>')
const dataDir = join(tmp, 'data')

let tls: TlsMaterial
let server: RunningServer

beforeAll(async () => {
  tls = await loadTls({ dataDir, hosts: certificateHosts(['10.77.0.1'], 'classroom-pc') })
  server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir, tls, redirectPort: 0 })
})
afterAll(async () => {
  await server?.close()
  rmSync(tmp, { recursive: true, force: true })
})

function get(url: string, ca?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    }
    const req = url.startsWith('https:') ? httpsRequest(url, { ca }, done) : httpRequest(url, done)
    req.on('error', reject)
    req.end()
  })
}

describe('HTTPS', () => {
  it('generates a certificate once, for localhost and the LAN addresses, and reuses it', async () => {
    expect(tls.source).toBe('generated')
    expect(tls.names).toEqual(expect.arrayContaining(['localhost', '127.0.0.1', '10.77.0.1', 'classroom-pc']))
    expect(statSync(join(dataDir, GENERATED_KEY_FILE)).mode & 0o077).toBe(0)
    const again = await loadTls({ dataDir, hosts: certificateHosts(['10.77.0.1'], 'classroom-pc') })
    expect(again.source).toBe('reused')
    expect(again.spkiSha256).toBe(tls.spkiSha256)
    // A new LAN address (another DHCP lease) is not covered: made again.
    const moved = await loadTls({ dataDir: join(tmp, 'moved'), hosts: ['localhost'] })
    const renewed = await loadTls({ dataDir: join(tmp, 'moved'), hosts: ['localhost', '10.9.9.9'] })
    expect(renewed.source).toBe('generated')
    expect(renewed.spkiSha256).not.toBe(moved.spkiSha256)
  })

  it('serves the app over TLS with the isolation headers, and the URL says https', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(server.secure).toBe(true)
    const r = await get(`${server.url}/host`, tls.cert)
    expect(r.status).toBe(200)
    expect(r.body).toContain('<title>tabswarm</title>')
    expect(r.headers['cross-origin-opener-policy']).toBe('same-origin')
    expect(r.headers['cross-origin-embedder-policy']).toBe('require-corp')
    // Untrusted by default, as for a browser before the student accepts the warning.
    await expect(get(`${server.url}/`)).rejects.toThrow(/self-signed|certificate/i)
  })

  it('builds join links with https from the Host header', async () => {
    const r = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${server.url}/api/rooms`, { method: 'POST', ca: tls.cert, headers: { 'content-type': 'application/json', host: `10.77.0.1:${server.port}` } }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve(body))
      })
      req.on('error', reject)
      req.end('{}')
    })
    expect(JSON.parse(r).joinUrl).toMatch(new RegExp(`^https://10\\.77\\.0\\.1:${server.port}`))
  })

  it('carries socket.io over TLS', async () => {
    const s = connect(server.url, { transports: ['websocket'], reconnection: false, forceNew: true, ca: tls.cert })
    try {
      await nextEvent(s, 'connect', 'socket.io connects over wss')
      expect(s.connected).toBe(true)
    } finally {
      s.disconnect()
    }
  })

  it('redirects plain HTTP to the HTTPS origin of the same host', async () => {
    expect(server.redirectPort).toBeGreaterThan(0)
    const r = await get(`http://127.0.0.1:${server.redirectPort}/room/ABC?x=1`)
    expect(r.status).toBe(307)
    expect(r.headers.location).toBe(`https://127.0.0.1:${server.port}/room/ABC?x=1`)
  })
})

describe('settings', () => {
  it('reads --https / HTTPS=1, TLS_CERT with TLS_KEY, and HTTP_PORT defaulting to PORT+1', () => {
    expect(readSettings([], {}).tls).toBeNull()
    expect(readSettings(['--https'], {}).tls).toEqual({ certFile: null, keyFile: null, httpPort: 8081 })
    expect(readSettings([], { HTTPS: '1', PORT: '9000' }).tls).toEqual({ certFile: null, keyFile: null, httpPort: 9001 })
    expect(readSettings([], { HTTPS: 'true', TLS_CERT: 'c.pem', TLS_KEY: 'k.pem', HTTP_PORT: '80', PORT: '443' }).tls).toEqual({ certFile: 'c.pem', keyFile: 'k.pem', httpPort: 80 })
    expect(readSettings(['--port', '0', '--https'], {}).tls?.httpPort).toBe(0)
    expect(() => readSettings([], { TLS_CERT: 'c.pem' })).toThrow(/TLS_KEY/)
    expect(() => readSettings(['--https', '--http-port', '8080'], {})).toThrow(/HTTP_PORT/)
    expect(() => readSettings([], { HTTPS: 'maybe' })).toThrow(/HTTPS/)
    expect(readSettings(['--help'], {}).help).toBe(true)
  })
})
