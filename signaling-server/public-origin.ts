import type { NetworkInterfaceInfo } from 'node:os'

/**
 * Which origin students can reach. A teacher typically opens http://localhost:8080/host on the
 * machine that runs the server; a join link or QR code built from that page's own origin points
 * every phone at itself. The server therefore knows a public origin: PUBLIC_URL when the
 * operator set one (a reverse proxy, a domain, HTTPS), else the first LAN IPv4 address when it
 * listens on every interface.
 */

export interface PublicOrigin {
  /** The origin join links use (no trailing slash). */
  url: string
  /** How it was chosen: the operator's PUBLIC_URL, the page's own Host header, or a LAN address. */
  source: 'PUBLIC_URL' | 'request' | 'lan'
  /** Only this machine can open `url` (localhost, 127.x, ::1): show a warning to the teacher. */
  localOnly: boolean
}

/** Non-internal IPv4 addresses, in the order the OS lists them (what main.ts prints). */
export function lanAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string[] {
  const out: string[] = []
  for (const list of Object.values(interfaces))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address)
  return out
}

/** True for hosts only this machine reaches: localhost names, 127.0.0.0/8, ::1, 0.0.0.0. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1' || h === '0.0.0.0' || h === '::'
}

/** `http://host:port` → its hostname, or null when it is not an http(s) URL. */
function hostnameOf(url: string): string | null {
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.hostname : null
  } catch {
    return null
  }
}

/**
 * The origin for links in an answer to a request whose Host header is `requestHost`:
 *  1. PUBLIC_URL, when set, always (the operator knows best, e.g. https behind a proxy);
 *  2. the request's own origin when it is not loopback: whoever reached this address over the
 *     network (a LAN IP, a domain) can hand it on;
 *  3. the LAN address, when the page was opened on localhost and the server listens on the LAN;
 *  4. otherwise the request's origin, marked localOnly so the UI warns.
 *
 * @example
 * resolvePublicOrigin({ publicUrl: null, lanUrl: 'http://192.168.1.20:8080', requestHost: 'localhost:8080' })
 * // → { url: 'http://192.168.1.20:8080', source: 'lan', localOnly: false }
 */
export function resolvePublicOrigin(opts: { publicUrl: string | null; lanUrl: string | null; requestHost: string | undefined }): PublicOrigin {
  if (opts.publicUrl) {
    const host = hostnameOf(opts.publicUrl)
    return { url: opts.publicUrl, source: 'PUBLIC_URL', localOnly: host === null || isLoopbackHost(host) }
  }
  const requestUrl = `http://${opts.requestHost || 'localhost'}`
  const requestHostname = hostnameOf(requestUrl) ?? 'localhost'
  if (!isLoopbackHost(requestHostname)) return { url: requestUrl, source: 'request', localOnly: false }
  if (opts.lanUrl) return { url: opts.lanUrl, source: 'lan', localOnly: false }
  return { url: requestUrl, source: 'request', localOnly: true }
}

/**
 * The LAN origin of a server listening on `host`:`port`: the first LAN IPv4 address when it
 * listens on every interface, its own address when bound to a non-loopback one, else null.
 */
export function lanOrigin(host: string, port: number, addresses: readonly string[]): string | null {
  if (host === '0.0.0.0' || host === '::') return addresses[0] ? `http://${addresses[0]}:${port}` : null
  if (isLoopbackHost(host)) return null
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Validates PUBLIC_URL: an absolute http(s) URL, returned without a trailing slash. */
export function normalizePublicUrl(raw: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new Error(`PUBLIC_URL: '${raw}' is not an absolute URL (e.g. http://192.168.1.20:8080)`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`PUBLIC_URL: '${raw}' must start with http:// or https://`)
  if (u.search || u.hash) throw new Error(`PUBLIC_URL: '${raw}' must not have a query or fragment`)
  return `${u.origin}${u.pathname}`.replace(/\/+$/, '')
}
