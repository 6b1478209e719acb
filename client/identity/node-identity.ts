/**
 * The Node peer's identity (shared/identity.ts): a key pair kept as JWK in a file in the peer's data
 * dir, so the peer keeps its id across restarts; or, without a file, an ephemeral one that lasts as
 * long as the process (the caller keeps the Identity, so reconnects of the process keep the id).
 *
 * File format (JSON, mode 0600): { "v": 1, "publicKey": <JWK>, "privateKey": <JWK> }.
 * Two processes sharing one file share one id, and would replace each other in a room: give each
 * peer its own data dir.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateIdentityKeys, identityFromKeys, type Identity } from '../../shared/identity'

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const

interface IdentityFile {
  v: 1
  publicKey: JsonWebKey
  privateKey: JsonWebKey
}

function isEcJwk(k: unknown): k is JsonWebKey {
  if (typeof k !== 'object' || k === null) return false
  const j = k as Record<string, unknown>
  return j.kty === 'EC' && j.crv === 'P-256' && typeof j.x === 'string' && typeof j.y === 'string'
}

async function importPair(file: string, text: string): Promise<CryptoKeyPair> {
  const bad = (why: string) => new Error(`identity file ${file} is corrupt (${why}); move it away to make a new identity`)
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw bad('not JSON')
  }
  const d = data as Partial<IdentityFile> | null
  if (typeof d !== 'object' || d === null || !isEcJwk(d.publicKey) || !isEcJwk(d.privateKey) || typeof d.privateKey.d !== 'string')
    throw bad('expected { v, publicKey, privateKey } P-256 JWKs')
  if (d.publicKey.x !== d.privateKey.x || d.publicKey.y !== d.privateKey.y) throw bad('the public key does not match the private key')
  const { subtle } = globalThis.crypto
  let keys: CryptoKeyPair
  try {
    // Only the key material: whatever else a hand-edited file holds (key_ops, alg, ext) is ignored.
    const { x, y, d: dd } = d.privateKey
    const pub: JsonWebKey = { kty: 'EC', crv: 'P-256', x, y }
    const priv: JsonWebKey = { ...pub, d: dd }
    keys = {
      publicKey: await subtle.importKey('jwk', pub, ALGORITHM, true, ['verify']),
      privateKey: await subtle.importKey('jwk', priv, ALGORITHM, false, ['sign']),
    }
  } catch (e) {
    throw bad(`keys do not import: ${e instanceof Error ? e.message : String(e)}`)
  }
  // d must belong to (x, y): a round trip, since an import need not check it.
  const probe = new TextEncoder().encode('tabswarm-identity-file-check')
  const sig = await subtle.sign(SIGN, keys.privateKey, probe)
  if (!(await subtle.verify(SIGN, keys.publicKey, sig, probe))) throw bad('the private key does not match the public key')
  return keys
}

/** Writes the file whole or not at all: a temp file (mode 0600) in the same dir, then a rename. */
async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.${globalThis.crypto.randomUUID()}.tmp`
  try {
    await writeFile(tmp, text, { mode: 0o600, flag: 'wx' })
    await rename(tmp, file)
  } catch (e) {
    await rm(tmp, { force: true })
    throw e
  }
}

/**
 * With a path: the identity stored there, made and written on first use. A corrupt file is an
 * error naming the file (never silently replaced: that would change the peer's id). With null: a
 * fresh identity for this process only.
 */
export async function loadNodeIdentity(file: string | null): Promise<Identity> {
  if (file === null) return identityFromKeys(await generateIdentityKeys(false))

  let text: string | null = null
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`identity file ${file}: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (text !== null) return identityFromKeys(await importPair(file, text))

  const keys = await generateIdentityKeys(true)
  const { subtle } = globalThis.crypto
  const content: IdentityFile = {
    v: 1,
    publicKey: await subtle.exportKey('jwk', keys.publicKey),
    privateKey: await subtle.exportKey('jwk', keys.privateKey),
  }
  try {
    await writeAtomically(file, `${JSON.stringify(content, null, 2)}\n`)
  } catch (e) {
    throw new Error(`identity file ${file}: cannot write (${e instanceof Error ? e.message : String(e)})`)
  }
  return identityFromKeys(keys)
}
