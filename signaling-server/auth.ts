import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Host tokens: 256 random bits handed to the room's creator once. The server keeps only the
 * SHA-256, so a leaked database cannot be replayed as a token, and compares digests in
 * constant time so response timing reveals nothing about the stored hash.
 */

export function newHostToken(): string {
  return randomBytes(32).toString('base64url')
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export function tokenMatches(storedHashHex: string, presented: string): boolean {
  const a = Buffer.from(storedHashHex, 'hex')
  const b = createHash('sha256').update(presented, 'utf8').digest()
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The token from `Authorization: Bearer <token>`, or null. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return m ? m[1] : null
}
