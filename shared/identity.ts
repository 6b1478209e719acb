/**
 * A volunteer's long-lived identity: an ECDSA P-256 / SHA-256 key pair (the curve every WebCrypto
 * implementation has). The peer id is derived from the public key, and at join the client proves it
 * holds the private key by signing the connection's `hello` challenge together with the room
 * (shared/protocol/signaling.ts), so the id survives reloads and reconnects and cooldowns,
 * suspicion, tenure and credit attach to it rather than to a socket id.
 *
 * Isomorphic: only globalThis.crypto (subtle and getRandomValues) and TextEncoder, no Buffer and no
 * node: imports. The browser keeps its keys in IndexedDB (client/identity/browser-identity.ts), the
 * Node peer in its data dir (client/identity/node-identity.ts).
 *
 * Wire formats:
 *   publicKey  base64url (no padding) of the SPKI export: 91 bytes, 122 characters
 *   signature  base64url of WebCrypto's raw r||s: 64 bytes, 86 characters
 *   peer id    'k-' + 24 lowercase hex digits (the first 12 bytes of SHA-256 of the SPKI bytes):
 *              26 characters, never the 20 characters of a socket.io id
 */

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const
/** DER SPKI of an uncompressed P-256 point; the only encoding accepted, so one key has one id. */
const SPKI_BYTES = 91
const SIGNATURE_BYTES = 64
/** The schema's bound on both wire strings (joinSchema.identity). */
const MAX_WIRE_CHARS = 256
const ID_PREFIX = 'k-'
const ID_HASH_BYTES = 12
const CHALLENGE_BYTES = 32
const DOMAIN = 'tabswarm-join/v1'

export interface IdentityProof {
  publicKey: string
  signature: string
}

/**
 * What joining needs, whichever signer holds the key: identityFromKeys (WebCrypto) or
 * nobleIdentity (shared/identity-noble.ts, for insecure contexts without crypto.subtle).
 */
export interface Identity {
  /** The peer id derived from the public key (peerIdOf). */
  id: string
  /** base64url SPKI. */
  publicKey: string
  /** Signs the connection's hello challenge for a join into `room`. */
  prove(challenge: string, room: string): Promise<IdentityProof>
}

export type VerifyResult = { ok: true; id: string } | { ok: false; error: string }

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle
  if (!s) throw new Error('identity: WebCrypto (crypto.subtle) is unavailable here (an insecure http:// origin?)')
  return s
}

// ---- base64url (RFC 4648 §5, no padding) ----

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const LOOKUP = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]))

export function base64urlEncode(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2]
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63]
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i] << 16
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63]
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8)
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63]
  }
  return out
}

/**
 * Strict decoding: only the url-safe alphabet, no padding, no whitespace, and the unused low bits of
 * the last character zero, so every byte string has exactly one accepted encoding. Null otherwise.
 */
export function base64urlDecode(s: string): Uint8Array<ArrayBuffer> | null {
  if (typeof s !== 'string' || s.length % 4 === 1) return null
  const out = new Uint8Array(Math.floor((s.length * 3) / 4))
  let acc = 0
  let bits = 0
  let o = 0
  for (const c of s) {
    const v = LOOKUP.get(c)
    if (v === undefined) return null
    acc = ((acc << 6) | v) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null
  return out
}

// ---- keys, ids, challenges ----

/** A fresh key pair. The public key is always exportable; `extractable` governs the private key. */
export async function generateIdentityKeys(extractable: boolean): Promise<CryptoKeyPair> {
  return (await subtle().generateKey(ALGORITHM, extractable, ['sign', 'verify'])) as CryptoKeyPair
}

/** base64url of the key's SPKI export (122 characters for P-256). */
export async function publicKeyString(key: CryptoKey): Promise<string> {
  return base64urlEncode(new Uint8Array(await subtle().exportKey('spki', key)))
}

/**
 * The peer id of an SPKI given its SHA-256. Exported for the signer that has no crypto.subtle
 * (shared/identity-noble.ts), so both paths make one id from one key.
 */
export function peerIdOfSpkiHash(hash: Uint8Array): string {
  let hex = ''
  for (const b of hash.subarray(0, ID_HASH_BYTES)) hex += b.toString(16).padStart(2, '0')
  return ID_PREFIX + hex
}

async function idOfSpki(spki: Uint8Array<ArrayBuffer>): Promise<string> {
  return peerIdOfSpkiHash(new Uint8Array(await subtle().digest('SHA-256', spki)))
}

/** The peer id of a base64url SPKI public key: 'k-' + 24 lowercase hex digits. Throws on bad base64url. */
export async function peerIdOf(publicKey: string): Promise<string> {
  const spki = base64urlDecode(publicKey)
  if (!spki) throw new Error('identity.publicKey: not base64url')
  return idOfSpki(spki)
}

/** True for ids made by peerIdOf (as opposed to socket.io ids). */
export function isKeyPeerId(id: string): boolean {
  return /^k-[0-9a-f]{24}$/.test(id)
}

/**
 * The signed bytes: domain-separated and bound to the connection's challenge and the room, so a
 * signature is good for one join on one connection only. Challenges are base64url and room names
 * match roomNameSchema, so neither holds the separator.
 */
export function challengeMessage(challenge: string, room: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${DOMAIN}\n${challenge}\n${room}`)
}

/** 32 random bytes, base64url (43 characters): the server's `hello` challenge. */
export function newChallenge(): string {
  return base64urlEncode(globalThis.crypto.getRandomValues(new Uint8Array(CHALLENGE_BYTES)))
}

/** Wraps a key pair (from generateIdentityKeys, IndexedDB or a JWK file) for use at join. */
export async function identityFromKeys(keys: CryptoKeyPair): Promise<Identity> {
  const publicKey = await publicKeyString(keys.publicKey)
  const id = await peerIdOf(publicKey)
  const { privateKey } = keys
  return {
    id,
    publicKey,
    async prove(challenge, room) {
      const sig = await subtle().sign(SIGN, privateKey, challengeMessage(challenge, room))
      return { publicKey, signature: base64urlEncode(new Uint8Array(sig)) }
    },
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Checks a join's proof against the connection's challenge and the room. Never throws: anything
 * wrong is { ok: false } with an error naming the field ('identity.publicKey: …' or
 * 'identity.signature: …').
 */
export async function verifyIdentity(proof: IdentityProof, challenge: string, room: string): Promise<VerifyResult> {
  const fail = (error: string): VerifyResult => ({ ok: false, error })
  try {
    const p: unknown = proof
    if (typeof p !== 'object' || p === null) return fail('identity.publicKey: missing')
    const { publicKey, signature } = p as Record<string, unknown>
    if (typeof publicKey !== 'string' || publicKey.length === 0) return fail('identity.publicKey: must be a non-empty string')
    if (publicKey.length > MAX_WIRE_CHARS) return fail(`identity.publicKey: longer than ${MAX_WIRE_CHARS} characters`)
    if (typeof signature !== 'string' || signature.length === 0) return fail('identity.signature: must be a non-empty string')
    if (signature.length > MAX_WIRE_CHARS) return fail(`identity.signature: longer than ${MAX_WIRE_CHARS} characters`)

    const spki = base64urlDecode(publicKey)
    if (!spki) return fail('identity.publicKey: not base64url')
    if (spki.length !== SPKI_BYTES) return fail(`identity.publicKey: not a P-256 SPKI key (${spki.length} bytes, expected ${SPKI_BYTES})`)
    let key: CryptoKey
    try {
      key = await subtle().importKey('spki', spki, ALGORITHM, true, ['verify'])
    } catch {
      return fail('identity.publicKey: not an ECDSA P-256 public key (SPKI)')
    }
    // The canonical encoding only: one key, one id.
    if (!sameBytes(new Uint8Array(await subtle().exportKey('spki', key)), spki)) return fail('identity.publicKey: not in canonical SPKI form')

    const sig = base64urlDecode(signature)
    if (!sig) return fail('identity.signature: not base64url')
    if (sig.length !== SIGNATURE_BYTES) return fail(`identity.signature: ${sig.length} bytes, expected ${SIGNATURE_BYTES} (raw r||s)`)
    let valid: boolean
    try {
      valid = await subtle().verify(SIGN, key, sig, challengeMessage(challenge, room))
    } catch {
      valid = false
    }
    if (!valid) return fail('identity.signature: does not verify for this key, challenge and room')
    return { ok: true, id: await idOfSpki(spki) }
  } catch (e) {
    return fail(`identity.publicKey: could not be checked (${e instanceof Error ? e.message : String(e)})`)
  }
}
