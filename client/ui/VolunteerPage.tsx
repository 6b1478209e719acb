import { useEffect, useRef, useState, useSyncExternalStore, type FormEvent } from 'react'
import { MAX_NAME_CHARS } from '../../shared/names'
import { BACKENDS, type BackendName } from '../../shared/protocol/signaling'
import type { SessionHandle } from '../session/types'
import { createBrowserSession, saveName, savedName } from './session-adapter'
import { useTitle } from './hooks'
import { CapabilityNotice } from './volunteer/CapabilityNotice'
import { ContributionCard } from './volunteer/Contribution'
import { ActivityLog, NeighboursCard } from './volunteer/SessionDetails'
import { SessionBanners, SessionHeader } from './volunteer/SessionHeader'
import { DataProgress, StatGrid, useTrend } from './volunteer/SessionStats'

/**
 * The volunteer tab: join a room, then show honestly what this tab is doing. The session lives
 * outside React state so StrictMode's double mount cannot start two sessions for one tab.
 */

let current: SessionHandle | null = null
const listeners = new Set<() => void>()
const notify = () => listeners.forEach((l) => l())
const store = {
  subscribe(l: () => void) {
    listeners.add(l)
    return () => listeners.delete(l)
  },
  get: () => current,
}

function startSession(room: string, backend: BackendName | undefined, name: string | undefined): string | null {
  if (current) return null
  try {
    current = createBrowserSession({ room, backend, name })
    notify()
    return null
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/

export function VolunteerPage({ initialRoom, backend, name }: { initialRoom: string | null; backend: string | null; name: string | null }) {
  const session = useSyncExternalStore(store.subscribe, store.get)
  const forced = BACKENDS.includes(backend as BackendName) ? (backend as BackendName) : undefined
  const [startError, setStartError] = useState<string | null>(null)
  const autoJoined = useRef(false)

  // A link with ?room= joins at once: the tab trains as soon as it is ready.
  useEffect(() => {
    if (autoJoined.current || !initialRoom || !ROOM_RE.test(initialRoom)) return
    autoJoined.current = true
    setStartError(startSession(initialRoom, forced, name ?? undefined))
  }, [initialRoom, forced, name])

  if (!session) {
    return <JoinForm initialRoom={initialRoom ?? ''} error={startError} onJoin={(room, n) => {
      const url = new URL(window.location.href)
      url.searchParams.set('room', room)
      window.history.replaceState(null, '', url)
      // A name typed here is the person's: kept for their next visits and reloads (cleared: a generated one).
      saveName(n || null)
      setStartError(startSession(room, forced, n || undefined))
    }} />
  }
  return <SessionView session={session} onLeft={() => {
    current = null
    autoJoined.current = true
    const url = new URL(window.location.href)
    url.searchParams.delete('room')
    window.history.replaceState(null, '', url)
    notify()
  }} />
}

function JoinForm({ initialRoom, error, onJoin }: { initialRoom: string; error: string | null; onJoin: (room: string, name: string) => void }) {
  useTitle('Join a swarm · tabswarm')
  const [room, setRoom] = useState(initialRoom)
  const [name, setName] = useState(() => savedName() ?? '')
  const valid = ROOM_RE.test(room.trim())
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (valid) onJoin(room.trim(), name.trim())
  }
  return (
    <section className="join-hero">
      <div className="join-copy">
        <h1>Lend this tab to a neural network</h1>
        <p className="lead">
          Every tab that joins trains a small model on its own slice of the data and swaps what it learned directly with
          its neighbours. Together the swarm learns faster than any one of you.
        </p>
      </div>
      <form className="card join-card" onSubmit={submit} aria-label="Join a room">
        <label className="field">
          <span>Room code</span>
          <input
            className="code-input"
            aria-label="Room code"
            value={room}
            onChange={(e) => setRoom(e.target.value.replace(/\s+/g, ''))}
            placeholder="e.g. BLUE-FOX"
            autoCapitalize="characters"
            autoComplete="off"
            spellCheck={false}
            aria-invalid={room !== '' && !valid}
            autoFocus
          />
        </label>
        <label className="field">
          <span>Your name <em>(optional, shown on the class screen; without one you get a fun one)</em></span>
          <input aria-label="Your name" value={name} maxLength={MAX_NAME_CHARS} onChange={(e) => setName(e.target.value)} placeholder="Ada" autoComplete="nickname" />
        </label>
        {room !== '' && !valid ? <p className="field-error">Codes use letters, digits, - and _ only.</p> : null}
        {error ? <p className="banner error" role="alert">{error}</p> : null}
        <button type="submit" className="btn primary big" disabled={!valid}>Join</button>
      </form>
    </section>
  )
}

function SessionView({ session, onLeft }: { session: SessionHandle; onLeft: () => void }) {
  const s = useSyncExternalStore(
    (cb) => session.subscribe(() => cb()),
    () => session.snapshot(),
  )
  const trend = useTrend(s)
  useTitle(`${s.stage === 'training' ? '▶ ' : ''}${s.room} · tabswarm`)
  return (
    <section className="volunteer">
      <SessionHeader snapshot={s} session={session} onLeft={onLeft} />
      <SessionBanners snapshot={s} />
      <ContributionCard snapshot={s} />
      <CapabilityNotice snapshot={s} />
      <DataProgress snapshot={s} />
      <StatGrid snapshot={s} trend={trend} />
      <div className="two-col">
        <NeighboursCard snapshot={s} />
        <ActivityLog log={s.log} />
      </div>
      <p className="muted small center">Keep this tab open. You can pause or leave at any time; the swarm carries on, and what you trained still counts.</p>
    </section>
  )
}
