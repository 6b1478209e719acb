import { describe, expect, it } from 'vitest'
import { MAX_NAME_CHARS, friendlyName, normalizeName } from './names'

describe('normalizeName', () => {
  it('keeps one trimmed line and drops control and format characters', () => {
    expect(normalizeName('  Ada   Lovelace ')).toBe('Ada Lovelace')
    expect(normalizeName('Ada\nLovelace\r\n')).toBe('Ada Lovelace')
    // A right-to-left override and zero-width characters would let a name disguise itself.
    expect(normalizeName('\u202eAda\u200b\u200d')).toBe('Ada')
    expect(normalizeName('A\u0000d\u0007a')).toBe('A d a')
  })

  it('leaves markup as text (React escapes it) and keeps letters of every script', () => {
    expect(normalizeName('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>')
    expect(normalizeName('Zoë 李 😀')).toBe('Zoë 李 😀')
  })

  it('bounds the length in characters, never splitting a surrogate pair', () => {
    const long = '😀'.repeat(MAX_NAME_CHARS + 10)
    const n = normalizeName(long)!
    expect([...n]).toHaveLength(MAX_NAME_CHARS)
    expect(n).toBe('😀'.repeat(MAX_NAME_CHARS))
  })

  it('is null for nothing', () => {
    for (const v of ['', '   ', '\n\t', '\u200b', null, undefined, 42, {}]) expect(normalizeName(v)).toBeNull()
  })
})

describe('friendlyName', () => {
  it('is deterministic per seed, two words, and spreads seeds over many names', () => {
    expect(friendlyName('peer-abc')).toBe(friendlyName('peer-abc'))
    expect(friendlyName('peer-abc')).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/)
    const names = new Set(Array.from({ length: 200 }, (_, i) => friendlyName(`id-${i}`)))
    expect(names.size).toBeGreaterThan(150)
  })
})
