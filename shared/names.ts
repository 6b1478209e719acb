/**
 * Volunteers' display names: what a person typed (untrusted: it reaches every dashboard and
 * neighbour) normalised to one short line, and a friendly default ("Brave Otter") derived from a
 * seed such as the stable peer id, so a reloaded tab keeps its name without asking again.
 */

/** Longest kept name, in characters (code points); joinSchema accepts up to 40 UTF-16 units. */
export const MAX_NAME_CHARS = 32

/**
 * One line of at most MAX_NAME_CHARS: NFC, control and format characters (newlines, bidi
 * overrides, zero-width joiners) removed, runs of whitespace as one space, trimmed; null when
 * nothing is left. Markup needs no escaping here: React escapes text, and the name is never HTML.
 */
export function normalizeName(raw: unknown): string | null {
  if (typeof raw !== 'string') return null
  const cleaned = raw
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/gu, ' ')
    .trim()
  if (!cleaned) return null
  const chars = [...cleaned]
  return chars.length > MAX_NAME_CHARS ? chars.slice(0, MAX_NAME_CHARS).join('').trimEnd() : cleaned
}

const ADJECTIVES = [
  'Brave', 'Calm', 'Clever', 'Curious', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Kind', 'Lively',
  'Lucky', 'Mighty', 'Nimble', 'Patient', 'Proud', 'Quick', 'Quiet', 'Sunny', 'Swift', 'Witty',
  'Bold', 'Bright', 'Cheerful', 'Cosmic', 'Daring', 'Fuzzy', 'Golden', 'Humble', 'Keen', 'Merry',
  'Noble', 'Plucky',
] as const

const ANIMALS = [
  'Otter', 'Falcon', 'Badger', 'Dolphin', 'Fox', 'Heron', 'Koala', 'Lynx', 'Marmot', 'Newt',
  'Owl', 'Panda', 'Puffin', 'Quokka', 'Raven', 'Seal', 'Tiger', 'Turtle', 'Walrus', 'Wombat',
  'Beaver', 'Bison', 'Crane', 'Gecko', 'Hedgehog', 'Ibis', 'Jaguar', 'Lemur', 'Moose', 'Orca',
  'Penguin', 'Yak',
] as const

/** FNV-1a over UTF-16 units: stable across platforms, enough to spread ids over the word lists. */
function hash(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

/** "Brave Otter": the same seed always gives the same name (1,024 combinations). */
export function friendlyName(seed: string): string {
  const h = hash(seed)
  return `${ADJECTIVES[h % ADJECTIVES.length]} ${ANIMALS[Math.floor(h / ADJECTIVES.length) % ANIMALS.length]}`
}
