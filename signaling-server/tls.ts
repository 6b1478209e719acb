import { X509Certificate, createHash } from 'node:crypto'
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { hostname as osHostname } from 'node:os'
import { join } from 'node:path'
import { generate } from 'selfsigned'

/**
 * The certificate for `--https`: the operator's (TLS_CERT/TLS_KEY) when given, else a
 * self-signed one generated once into DATA_DIR and reused on restart, so a student who accepted
 * the browser's warning is not asked again after the server restarts. It is made again only
 * when it expires soon or no longer names one of the machine's addresses (a new DHCP lease).
 */

export interface TlsMaterial {
  key: string
  cert: string
  /** Where it came from: the operator's files, or generated (now, or on an earlier start). */
  source: 'files' | 'generated' | 'reused'
  /** base64 SHA-256 of the certificate's public key (Chromium's --ignore-certificate-errors-spki-list). */
  spkiSha256: string
  /** DNS names and IP addresses the certificate is valid for. */
  names: string[]
  /** Where a generated certificate lives (null for the operator's files). */
  certPath: string | null
}

export const GENERATED_CERT_FILE = 'tls-cert.pem'
export const GENERATED_KEY_FILE = 'tls-key.pem'
/** Browsers cap accepted certificate lifetimes; a classroom server is restarted far more often. */
const VALIDITY_DAYS = 365
/** Made again when fewer days than this are left. */
const RENEW_DAYS = 14
const DAY_MS = 24 * 3600_000

export function spkiSha256(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

/** The names a certificate covers (its subjectAltName), e.g. ['localhost', '127.0.0.1', '192.168.1.20']. */
export function certificateNames(certPem: string): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? ''
  return san.split(/,\s*/).map((e) => e.replace(/^(DNS|IP Address):/, '')).filter(Boolean)
}

/**
 * localhost, 127.0.0.1, this machine's name and `addresses` (the LAN IPv4 addresses), without
 * duplicates. Not ::1: X509 prints it expanded, and `localhost` covers it by name.
 */
export function certificateHosts(addresses: readonly string[], machineName = osHostname()): string[] {
  const hosts = ['localhost', '127.0.0.1', ...addresses]
  if (machineName && !isIP(machineName)) hosts.push(machineName)
  return [...new Set(hosts)]
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

function stillGood(certPem: string, hosts: readonly string[], now: number): boolean {
  try {
    const x = new X509Certificate(certPem)
    if (Date.parse(x.validTo) - now < RENEW_DAYS * DAY_MS) return false
    const names = new Set(certificateNames(certPem))
    return hosts.every((h) => names.has(h))
  } catch {
    return false
  }
}

export async function generateCertificate(hosts: readonly string[], now = Date.now()): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: 'tabswarm (self-signed)' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - DAY_MS),
    notAfterDate: new Date(now + VALIDITY_DAYS * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: hosts.map((h) => (isIP(h) ? { type: 7 as const, ip: h } : { type: 2 as const, value: h })) },
    ],
  })
  return { key: pems.private, cert: pems.cert }
}

/** Writes atomically (temp file + rename) so a crash never leaves half a key to reuse. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data, { mode })
  await chmod(tmp, mode)
  await rename(tmp, path)
}

/**
 * @example
 * const tls = await loadTls({ dataDir: '.tabswarm-data', hosts: certificateHosts(['192.168.1.20']) })
 * https.createServer({ key: tls.key, cert: tls.cert }, handler)
 */
export async function loadTls(opts: {
  dataDir: string
  hosts: readonly string[]
  certFile?: string | null
  keyFile?: string | null
  now?: number
}): Promise<TlsMaterial> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error('TLS_CERT and TLS_KEY go together: set both, or neither for a generated certificate')
    const [cert, key] = await Promise.all([readFile(opts.certFile, 'utf8'), readFile(opts.keyFile, 'utf8')])
    return { key, cert, source: 'files', spkiSha256: spkiSha256(cert), names: certificateNames(cert), certPath: null }
  }
  const now = opts.now ?? Date.now()
  await mkdir(opts.dataDir, { recursive: true })
  const certPath = join(opts.dataDir, GENERATED_CERT_FILE)
  const keyPath = join(opts.dataDir, GENERATED_KEY_FILE)
  const [cert, key] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)])
  if (cert && key && stillGood(cert, opts.hosts, now))
    return { key, cert, source: 'reused', spkiSha256: spkiSha256(cert), names: certificateNames(cert), certPath }
  const made = await generateCertificate(opts.hosts, now)
  await writeAtomic(keyPath, made.key, 0o600)
  await writeAtomic(certPath, made.cert, 0o644)
  return { ...made, source: 'generated', spkiSha256: spkiSha256(made.cert), names: certificateNames(made.cert), certPath }
}
