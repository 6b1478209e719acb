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
} from './identity'
import { helloSchema, joinSchema, peerIdSchema } from './protocol/signaling'

const ROOM = 'mnist-1'

describe('base64url', () => {
  it('round-trips every length and rejects anything not canonical', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = crypto.getRandomValues(new Uint8Array(n))
      const s = base64urlEncode(bytes)
      expect(s).toMatch(/^[A-Za-z0-9_-]*$/)
      expect(base64urlDecode(s)).toEqual(bytes)
    }
    expect(base64urlEncode(new Uint8Array([0xfb, 0xff]))).toBe('-_8')
    for (const bad of ['A', 'AB==', 'A+B/', 'AB C', 'AB\n', 'AQ=', 'AR', 'é']) expect(base64urlDecode(bad)).toBeNull()
    expect(base64urlDecode('AQ')).toEqual(new Uint8Array([1]))
  })
})

describe('identity', () => {
  it('a proof verifies, and gives the id derived from the key', async () => {
    const me = await identityFromKeys(await generateIdentityKeys(false))
    const challenge = newChallenge()
    const proof = await me.prove(challenge, ROOM)
    expect(await verifyIdentity(proof, challenge, ROOM)).toEqual({ ok: true, id: me.id })
    expect(me.id).toBe(await peerIdOf(me.publicKey))
    expect(isKeyPeerId(me.id)).toBe(true)
  })

  it('the id is stable for a key and differs for another', async () => {
    const keys = await generateIdentityKeys(true)
    const a = await identityFromKeys(keys)
    const again = await identityFromKeys(keys)
    expect(again.id).toBe(a.id)
    expect(await publicKeyString(keys.publicKey)).toBe(a.publicKey)
    // The same key re-imported (as from a file) gives the same id.
    const jwk = await crypto.subtle.exportKey('jwk', keys.publicKey)
    const reimported = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify'])
    expect(await peerIdOf(await publicKeyString(reimported))).toBe(a.id)
    const other = await identityFromKeys(await generateIdentityKeys(false))
    expect(other.id).not.toBe(a.id)
  })

  it('fits the protocol: wire strings, challenge and id within the schemas, never like a socket.io id', async () => {
    const me = await identityFromKeys(await generateIdentityKeys(false))
    const challenge = newChallenge()
    const proof = await me.prove(challenge, ROOM)
    expect(me.publicKey).toHaveLength(122)
    expect(proof.signature).toHaveLength(86)
    expect(joinSchema.safeParse({ v: 1, room: ROOM, role: 'volunteer', identity: proof }).error).toBeUndefined()
    expect(helloSchema.safeParse({ v: 1, challenge }).success).toBe(true)
    expect(challenge).toHaveLength(43)
    expect(newChallenge()).not.toBe(challenge)
    expect(peerIdSchema.safeParse(me.id).success).toBe(true)
    expect(me.id).toMatch(/^k-[0-9a-f]{24}$/)
    expect(isKeyPeerId('Abc_def-GHIjklMNOpqr')).toBe(false)
  })

  it('rejects a proof for another room or challenge, a tampered signature and another key', async () => {
    const me = await identityFromKeys(await generateIdentityKeys(false))
    const other = await identityFromKeys(await generateIdentityKeys(false))
    const challenge = newChallenge()
    const proof = await me.prove(challenge, ROOM)
    const rejected = async (p: { publicKey: string; signature: string }, c: string, room: string) => {
      const r = await verifyIdentity(p, c, room)
      expect(r.ok).toBe(false)
      return r.ok ? '' : r.error
    }
    expect(await rejected(proof, challenge, 'other-room')).toMatch(/^identity\.signature: does not verify/)
    expect(await rejected(proof, newChallenge(), ROOM)).toMatch(/^identity\.signature:/)
    const sig = base64urlDecode(proof.signature)!
    sig[10] ^= 1
    expect(await rejected({ ...proof, signature: base64urlEncode(sig) }, challenge, ROOM)).toMatch(/^identity\.signature:/)
    expect(await rejected({ ...proof, publicKey: other.publicKey }, challenge, ROOM)).toMatch(/^identity\.signature:/)
    // The message is domain-separated and binds both fields.
    expect(new TextDecoder().decode(challengeMessage('c', 'r'))).toBe('tabswarm-join/v1\nc\nr')
  })

  it('garbage never throws, and the error names the field', async () => {
    const me = await identityFromKeys(await generateIdentityKeys(false))
    const challenge = newChallenge()
    const { publicKey, signature } = await me.prove(challenge, ROOM)
    const p384 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])
    const rsa = await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )
    const ed = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair
    const spki = base64urlDecode(publicKey)!
    const flipped = spki.slice()
    flipped[80] ^= 0xff // a point off the curve
    const ecdh = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])
    const derSig = new Uint8Array(72)
    const cases: [unknown, RegExp][] = [
      [null, /^identity\.publicKey:/],
      ['str', /^identity\.publicKey:/],
      [{}, /^identity\.publicKey:/],
      [{ publicKey: 5, signature }, /^identity\.publicKey:/],
      [{ publicKey: '', signature }, /^identity\.publicKey:/],
      [{ publicKey: 'x'.repeat(300), signature }, /^identity\.publicKey:/],
      [{ publicKey: 'not base64!', signature }, /^identity\.publicKey: not base64url/],
      [{ publicKey: `${publicKey}==`, signature }, /^identity\.publicKey:/],
      [{ publicKey: 'AAAA', signature }, /^identity\.publicKey:/],
      [{ publicKey: base64urlEncode(new Uint8Array(91)), signature }, /^identity\.publicKey:/],
      [{ publicKey: base64urlEncode(flipped), signature }, /^identity\.publicKey:/],
      [{ publicKey: await publicKeyString(p384.publicKey), signature }, /^identity\.publicKey:/],
      [{ publicKey: await publicKeyString(rsa.publicKey), signature }, /^identity\.publicKey:/],
      [{ publicKey: await publicKeyString(ed.publicKey), signature }, /^identity\.publicKey:/],
      [{ publicKey: await publicKeyString(ecdh.publicKey), signature }, /^identity\.publicKey:|^identity\.signature:/],
      [{ publicKey }, /^identity\.signature:/],
      [{ publicKey, signature: '' }, /^identity\.signature:/],
      [{ publicKey, signature: 7 }, /^identity\.signature:/],
      [{ publicKey, signature: 'y'.repeat(300) }, /^identity\.signature:/],
      [{ publicKey, signature: '%%%' }, /^identity\.signature: not base64url/],
      [{ publicKey, signature: base64urlEncode(derSig) }, /^identity\.signature: 72 bytes/],
      [{ publicKey, signature: signature.slice(0, 84) }, /^identity\.signature:/],
      [{ publicKey, signature: base64urlEncode(new Uint8Array(64)) }, /^identity\.signature:/],
      [{ publicKey, signature: base64urlEncode(new Uint8Array(64).fill(0xff)) }, /^identity\.signature:/],
    ]
    for (const [proof, error] of cases) {
      const r = await verifyIdentity(proof as { publicKey: string; signature: string }, challenge, ROOM)
      expect(r.ok, JSON.stringify(proof)).toBe(false)
      if (!r.ok) expect(r.error, JSON.stringify(proof)).toMatch(error)
    }
    await expect(peerIdOf('not base64!')).rejects.toThrow(/^identity\.publicKey:/)
  })
})
