/**
 * The identity signer for pages without crypto.subtle: an insecure context such as a plain-http
 * LAN page (http://192.168.x.y:8080). Pure-JS P-256 (@noble/curves) and SHA-256 (@noble/hashes)
 * produce the same wire formats as identityFromKeys in shared/identity.ts (SPKI public key, raw
 * r||s signature over SHA-256 of challengeMessage, 'k-' id), so the server's WebCrypto
 * verifyIdentity accepts it unchanged. Only crypto.getRandomValues is needed, which insecure
 * contexts have.
 *
 * The private key is a raw 32-byte scalar the caller must keep (client/identity/browser-identity.ts
 * stores it in IndexedDB); docs/security.md says what that costs against a non-extractable CryptoKey.
 */
import { p256 } from '@noble/curves/nist.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { base64urlEncode, challengeMessage, peerIdOfSpkiHash, type Identity } from './identity'

/** The DER header of an id-ecPublicKey / prime256v1 SubjectPublicKeyInfo holding a 65-byte BIT STRING. */
const SPKI_P256_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
  0x07, 0x03, 0x42, 0x00,
])
const POINT_BYTES = 65
export const SECRET_KEY_BYTES = 32

/** The 91-byte SPKI of an uncompressed P-256 point (0x04 || x || y), byte for byte WebCrypto's export. */
export function spkiOfPoint(point: Uint8Array): Uint8Array<ArrayBuffer> {
  if (point.length !== POINT_BYTES || point[0] !== 0x04) throw new Error('identity: expected an uncompressed P-256 point (65 bytes)')
  const spki = new Uint8Array(SPKI_P256_PREFIX.length + POINT_BYTES)
  spki.set(SPKI_P256_PREFIX)
  spki.set(point, SPKI_P256_PREFIX.length)
  return spki
}

/** A fresh private key (32 bytes), from crypto.getRandomValues. */
export function newNobleSecretKey(): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(p256.utils.randomSecretKey())
}

/** True for 32 bytes that are a valid P-256 private key (nonzero, below the group order). */
export function isNobleSecretKey(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === SECRET_KEY_BYTES && p256.utils.isValidSecretKey(v)
}

/**
 * The Identity of a raw P-256 private key. Synchronous work only: signing is a few milliseconds of
 * pure JS, once per join.
 */
export function nobleIdentity(secretKey: Uint8Array): Identity {
  if (!isNobleSecretKey(secretKey)) throw new Error('identity: not a P-256 private key (32 bytes)')
  const secret = Uint8Array.from(secretKey)
  const spki = spkiOfPoint(p256.getPublicKey(secret, false))
  const publicKey = base64urlEncode(spki)
  const id = peerIdOfSpkiHash(sha256(spki))
  return {
    id,
    publicKey,
    prove(challenge, room) {
      // prehash: SHA-256 of the message, as WebCrypto's { name: 'ECDSA', hash: 'SHA-256' } does;
      // 'compact' is WebCrypto's raw r||s. Low-s is one of the two signatures WebCrypto accepts.
      const sig = p256.sign(challengeMessage(challenge, room), secret, { prehash: true, format: 'compact' })
      return Promise.resolve({ publicKey, signature: base64urlEncode(sig) })
    },
  }
}
