import { p256 } from '@noble/curves/nist.js'
import { describe, expect, it } from 'vitest'
import {
  base64urlDecode,
  base64urlEncode,
  challengeMessage,
  generateIdentityKeys,
  identityFromKeys,
  isKeyPeerId,
  newChallenge,
  peerIdOf,
  publicKeyString,
  verifyIdentity,
  type IdentityProof,
} from './identity'
import { isNobleSecretKey, newNobleSecretKey, nobleIdentity, spkiOfPoint } from './identity-noble'

const ROOM = 'mnist-1'
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const

/** The noble private key as a WebCrypto key pair, through JWK. */
async function webCryptoPairOf(secret: Uint8Array): Promise<CryptoKeyPair> {
  const point = p256.getPublicKey(secret, false)
  const pub: JsonWebKey = { kty: 'EC', crv: 'P-256', x: base64urlEncode(point.subarray(1, 33)), y: base64urlEncode(point.subarray(33, 65)) }
  return {
    publicKey: await crypto.subtle.importKey('jwk', pub, ALGORITHM, true, ['verify']),
    privateKey: await crypto.subtle.importKey('jwk', { ...pub, d: base64urlEncode(secret) }, ALGORITHM, false, ['sign']),
  }
}

describe('noble identity (no crypto.subtle)', () => {
  it("a noble-made proof passes the server's WebCrypto verification, under the id of its SPKI", async () => {
    const secret = newNobleSecretKey()
    expect(isNobleSecretKey(secret)).toBe(true)
    const me = nobleIdentity(secret)
    expect(isKeyPeerId(me.id)).toBe(true)
    expect(me.publicKey).toHaveLength(122)
    expect(await peerIdOf(me.publicKey)).toBe(me.id)
    const challenge = newChallenge()
    const proof = await me.prove(challenge, ROOM)
    expect(proof.publicKey).toBe(me.publicKey)
    expect(proof.signature).toHaveLength(86)
    expect(await verifyIdentity(proof, challenge, ROOM)).toEqual({ ok: true, id: me.id })
    // One key, one identity: the same secret later (a reload) gives the same id.
    expect(nobleIdentity(Uint8Array.from(secret)).id).toBe(me.id)
  })

  it('the SPKI is byte for byte what WebCrypto exports for the same key', async () => {
    const keys = await generateIdentityKeys(true)
    const point = new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey))
    expect(base64urlEncode(spkiOfPoint(point))).toBe(await publicKeyString(keys.publicKey))
    const secret = base64urlDecode((await crypto.subtle.exportKey('jwk', keys.privateKey)).d!)!
    const fromWebCrypto = await identityFromKeys(keys)
    const fromNoble = nobleIdentity(secret)
    expect(fromNoble.publicKey).toBe(fromWebCrypto.publicKey)
    expect(fromNoble.id).toBe(fromWebCrypto.id)
  })

  it('WebCrypto and noble signatures by one key both verify, and a tampered one fails', async () => {
    const secret = newNobleSecretKey()
    const noble = nobleIdentity(secret)
    const webcrypto = await identityFromKeys(await webCryptoPairOf(secret))
    expect(webcrypto.id).toBe(noble.id)
    const challenge = newChallenge()
    const a = await noble.prove(challenge, ROOM)
    const b = await webcrypto.prove(challenge, ROOM)
    expect(await verifyIdentity(a, challenge, ROOM)).toEqual({ ok: true, id: noble.id })
    expect(await verifyIdentity(b, challenge, ROOM)).toEqual({ ok: true, id: noble.id })
    // And the other way round: noble reads WebCrypto's raw r||s over the same prehashed message.
    expect(p256.verify(base64urlDecode(b.signature)!, challengeMessage(challenge, ROOM), p256.getPublicKey(secret, false), { lowS: false })).toBe(true)

    const rejected = async (p: IdentityProof, c = challenge, room = ROOM) => {
      const r = await verifyIdentity(p, c, room)
      return r.ok ? null : r.error
    }
    const sig = base64urlDecode(a.signature)!
    for (const i of [0, 31, 32, 63]) {
      const bad = Uint8Array.from(sig)
      bad[i] ^= 1
      expect(await rejected({ ...a, signature: base64urlEncode(bad) })).toMatch(/^identity\.signature:/)
    }
    expect(await rejected(a, challenge, 'other-room')).toMatch(/^identity\.signature: does not verify/)
    expect(await rejected(a, newChallenge())).toMatch(/^identity\.signature:/)
    expect(await rejected({ ...a, publicKey: nobleIdentity(newNobleSecretKey()).publicKey })).toMatch(/^identity\.signature:/)
  })

  it('refuses what is not a P-256 private key', () => {
    expect(isNobleSecretKey(new Uint8Array(32))).toBe(false)
    expect(isNobleSecretKey(new Uint8Array(31).fill(1))).toBe(false)
    expect(isNobleSecretKey('x'.repeat(32))).toBe(false)
    expect(() => nobleIdentity(new Uint8Array(32).fill(0xff))).toThrow(/not a P-256 private key/)
    expect(() => spkiOfPoint(new Uint8Array(33))).toThrow(/uncompressed/)
  })
})
