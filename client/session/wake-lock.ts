import type { SessionSnapshot } from './types'

/**
 * Keeps a phone's screen on while its tab works for the swarm (Screen Wake Lock API). A dimmed
 * and locked phone hides the page, and a hidden page steps out of the roster after the room's
 * grace period; the lock avoids that for as long as the student does not pause or leave.
 *
 * The browser drops the lock whenever the page is hidden, so it is asked for again each time
 * the page becomes visible while still wanted. Where the API is missing (insecure origins,
 * older browsers) or refuses (battery saver, permissions policy), nothing happens.
 */

/** The parts of Document and Navigator this needs (tests pass stand-ins). */
export interface WakeLockEnv {
  doc: Pick<Document, 'visibilityState' | 'addEventListener' | 'removeEventListener'>
  wakeLock: { request(type: 'screen'): Promise<Pick<WakeLockSentinel, 'release' | 'addEventListener' | 'released'>> } | undefined
}

/** Stages in which the tab is, or is about to be, training: the screen stays on. */
const WORKING: ReadonlySet<SessionSnapshot['stage']> = new Set(['loading', 'connecting', 'training', 'stalled', 'paused'])

/** Whether this snapshot wants the screen on: working, and not stepped out (a user pause releases it). */
export function wantsScreenOn(s: Pick<SessionSnapshot, 'stage' | 'away'>): boolean {
  return WORKING.has(s.stage) && s.away === null
}

/**
 * Follows `subscribe`'s snapshots and the page's visibility, holding the screen lock exactly
 * while wanted and visible. Returns a stop function (releases the lock). `onChange` hears
 * whether the lock is held (the page shows it).
 */
export function keepScreenOn(
  subscribe: (cb: (s: SessionSnapshot) => void) => () => void,
  env: WakeLockEnv,
  onChange: (held: boolean) => void = () => {},
): () => void {
  const api = env.wakeLock
  if (!api) return () => {}
  let sentinel: Awaited<ReturnType<typeof api.request>> | null = null
  let pending = false
  let want = false
  let stopped = false
  const set = (s: typeof sentinel) => {
    sentinel = s
    onChange(s !== null)
  }
  const sync = () => {
    if (stopped) return
    const visible = env.doc.visibilityState === 'visible'
    if (want && visible && !sentinel && !pending) {
      pending = true
      api.request('screen').then(
        (s) => {
          pending = false
          s.addEventListener('release', () => {
            if (sentinel === s) set(null)
          })
          if (stopped || !want || s.released) {
            void s.release().catch(() => {})
            return
          }
          set(s)
        },
        () => {
          // Refused (not visible any more, battery saver, policy): the next change tries again.
          pending = false
        },
      )
    } else if (!want && sentinel) {
      const s = sentinel
      set(null)
      void s.release().catch(() => {})
    }
  }
  const unsubscribe = subscribe((snap) => {
    const next = wantsScreenOn(snap)
    if (next === want) return
    want = next
    sync()
  })
  env.doc.addEventListener('visibilitychange', sync)
  return () => {
    stopped = true
    unsubscribe()
    env.doc.removeEventListener('visibilitychange', sync)
    if (sentinel) {
      const s = sentinel
      set(null)
      void s.release().catch(() => {})
    }
  }
}
