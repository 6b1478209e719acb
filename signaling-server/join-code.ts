/**
 * Short join codes a teacher can read aloud or write on a board. The alphabet drops the
 * characters people confuse on a projector (0/O, 1/I/L), so any code typed in either case and
 * with stray spaces or dashes resolves to one room.
 */
export const JOIN_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ'
/** 31^6 ≈ 8.9e8 codes: collisions stay rare far beyond MAX_ROOMS (rooms.ts), and we re-draw on one. */
export const JOIN_CODE_LENGTH = 6

/**
 * @example makeJoinCode((n) => 0) // '222222'
 */
export function makeJoinCode(randomInt: (maxExclusive: number) => number): string {
  let s = ''
  for (let i = 0; i < JOIN_CODE_LENGTH; i++) s += JOIN_CODE_ALPHABET[randomInt(JOIN_CODE_ALPHABET.length)]
  return s
}

/** Upper-cases and strips separators; null when the result cannot be a join code. */
export function normalizeJoinCode(input: string): string | null {
  const s = input.toUpperCase().replace(/[\s-]/g, '')
  if (s.length !== JOIN_CODE_LENGTH) return null
  for (const ch of s) if (!JOIN_CODE_ALPHABET.includes(ch)) return null
  return s
}
