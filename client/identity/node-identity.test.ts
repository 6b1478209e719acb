import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { newChallenge, verifyIdentity } from '../../shared/identity'
import { loadNodeIdentity } from './node-identity'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tabswarm-identity-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('node identity', () => {
  it('is written on first use (mode 0600, parent dirs made) and the same on reload', async () => {
    const file = join(dir, 'data', 'nested', 'identity.json')
    const first = await loadNodeIdentity(file)
    const saved = JSON.parse(await readFile(file, 'utf8'))
    expect(saved.privateKey).toMatchObject({ kty: 'EC', crv: 'P-256' })
    expect(typeof saved.privateKey.d).toBe('string')
    if (process.platform !== 'win32') expect((await stat(file)).mode & 0o777).toBe(0o600)
    // Nothing left over from the atomic write.
    expect(await readdir(join(dir, 'data', 'nested'))).toEqual(['identity.json'])

    const again = await loadNodeIdentity(file)
    expect(again.id).toBe(first.id)
    expect(again.publicKey).toBe(first.publicKey)
    const challenge = newChallenge()
    expect(await verifyIdentity(await again.prove(challenge, 'r'), challenge, 'r')).toEqual({ ok: true, id: first.id })
  })

  it('a corrupt file is an error naming the file, and is left alone', async () => {
    const file = join(dir, 'identity.json')
    for (const text of ['{ not json', '{}', JSON.stringify({ v: 1, publicKey: { kty: 'EC' }, privateKey: { kty: 'EC' } })]) {
      await writeFile(file, text)
      await expect(loadNodeIdentity(file)).rejects.toThrow(file)
      expect(await readFile(file, 'utf8')).toBe(text)
    }
    // A valid file with its private key swapped for another's: keys that do not match.
    const a = join(dir, 'a.json')
    const b = join(dir, 'b.json')
    await loadNodeIdentity(a)
    await loadNodeIdentity(b)
    const ja = JSON.parse(await readFile(a, 'utf8'))
    const jb = JSON.parse(await readFile(b, 'utf8'))
    await writeFile(file, JSON.stringify({ ...ja, privateKey: { ...ja.privateKey, d: jb.privateKey.d } }))
    await expect(loadNodeIdentity(file)).rejects.toThrow(/identity file .*identity\.json is corrupt/)
  })

  it('without a file: an ephemeral identity, a new one per call', async () => {
    const a = await loadNodeIdentity(null)
    const b = await loadNodeIdentity(null)
    expect(a.id).not.toBe(b.id)
    const challenge = newChallenge()
    expect(await verifyIdentity(await a.prove(challenge, 'r'), challenge, 'r')).toEqual({ ok: true, id: a.id })
  })
})
