import { useEffect, useRef, useState, useSyncExternalStore, type FormEvent, type ReactNode } from 'react'
import { BACKENDS, type BackendName } from '../../shared/protocol/signaling'
import { ALGORITHM_INFO } from '../../shared/config'
import type { SessionHandle, SessionStage } from '../session/types'
import { createBrowserSession } from './session-adapter'
import { backendColor, fmtBytes, fmtCompact, fmtNum, fmtPct } from './format'
import { Sparkline } from './Charts'
import { useTitle } from './hooks'

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

const STAGE_TEXT: Record<SessionStage, { label: string; help: string }> = {
  idle: { label: 'Idle', help: 'Not training yet.' },
  loading: { label: 'Loading', help: 'Downloading this tab’s share of the training data.' },
  connecting: { label: 'Connecting', help: 'Finding neighbours and opening peer-to-peer links.' },
  training: { label: 'Training', help: 'Learning on local data and averaging with neighbours.' },
  paused: { label: 'Paused', help: 'This tab is paused; neighbours carry on without it.' },
  stalled: { label: 'Stalled', help: 'Waiting longer than expected for neighbours.' },
  done: { label: 'Done', help: 'The run has finished. Thank you for helping!' },
  error: { label: 'Error', help: 'Something went wrong; see the message below.' },
  diverged: { label: 'Diverged', help: 'The model blew up; this tab stopped training and waits for the host to start a new run.' },
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
  const [name, setName] = useState('')
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
          <span>Your name <em>(optional, shown on the class screen)</em></span>
          <input aria-label="Your name" value={name} maxLength={40} onChange={(e) => setName(e.target.value)} placeholder="Ada" autoComplete="nickname" />
        </label>
        {room !== '' && !valid ? <p className="field-error">Codes use letters, digits, - and _ only.</p> : null}
        {error ? <p className="banner error" role="alert">{error}</p> : null}
        <button type="submit" className="btn primary big" disabled={!valid}>Join</button>
      </form>
    </section>
  )
}

interface Sample {
  t: number
  loss: number | null
  accuracy: number | null
}

function SessionView({ session, onLeft }: { session: SessionHandle; onLeft: () => void }) {
  const s = useSyncExternalStore(
    (cb) => session.subscribe(() => cb()),
    () => session.snapshot(),
  )
  const [leaving, setLeaving] = useState(false)
  const [trend, setTrend] = useState<Sample[]>([])
  const lastStep = useRef(-1)
  useTitle(`${s.stage === 'training' ? '▶ ' : ''}${s.room} · tabswarm`)

  // Keep a short local trace for the sparklines (the dashboard has the full history).
  useEffect(() => {
    if (s.step === lastStep.current) return
    lastStep.current = s.step
    setTrend((t) => [...t.slice(-119), { t: Date.now(), loss: s.loss, accuracy: s.accuracy }])
  }, [s.step, s.loss, s.accuracy])

  const leave = async () => {
    setLeaving(true)
    try {
      await session.leave()
    } finally {
      onLeft()
    }
  }

  const stage = STAGE_TEXT[s.stage] ?? STAGE_TEXT.idle
  // Paused by whom, and whether the swarm still counts on this tab.
  const help = s.away === 'paused'
    ? 'You paused this tab: it stepped out of the swarm, so nobody waits for it. Resume to rejoin.'
    : s.away === 'hidden'
      ? 'This tab is in the background: it stepped out of the swarm until you come back to it.'
      : s.stage === 'paused'
        ? (s.step === 0 ? 'Ready. Training starts when the host presses Start.' : 'The host paused the room; training continues when they resume.')
        : stage.help
  const faults = [
    s.faults.slowFactor > 1 ? `slowed this tab down ×${s.faults.slowFactor}` : '',
    s.faults.latencyMs > 0 ? `added ${s.faults.latencyMs} ms of latency to every message it sends` : '',
  ].filter(Boolean)
  const algo = s.config ? ALGORITHM_INFO[s.config.algorithm] : null
  return (
    <section className="volunteer">
      <div className="card session-head">
        <div className="session-title">
          <div className="eyebrow">Room</div>
          <h1 className="room-name">{s.room}</h1>
          {algo ? <div className="muted">{algo.title}{s.config ? ` · ${s.config.dataset} · ${s.config.model}` : ''}{s.run ? ` · run ${s.run}` : ''}</div> : null}
        </div>
        <div className="session-stage">
          <span className={`stage-pill stage-${s.stage}`} data-testid="stage" role="status" aria-live="polite">
            {stage.label}
          </span>
          <div className="muted small">{help}</div>
        </div>
        <div className="session-actions">
          {s.away === 'paused' ? (
            <button className="btn primary" onClick={() => session.resume()}>Resume</button>
          ) : (
            <button className="btn" onClick={() => session.pause()} disabled={s.stage === 'done' || s.stage === 'error' || s.stage === 'idle'}>Pause</button>
          )}
          <button className="btn danger" onClick={leave} disabled={leaving}>{leaving ? 'Leaving…' : 'Leave'}</button>
        </div>
      </div>

      {s.error ? <p className="banner error" role="alert">{s.error}</p> : null}
      {s.diverged ? (
        <p className="banner warn" role="status" data-testid="diverged-banner">
          The run diverged at step {s.diverged.step}: {s.diverged.reason}. This tab stays in the room and waits. {s.diverged.hint}
        </p>
      ) : null}
      {faults.length ? <p className="banner warn" role="status" data-testid="fault-banner">For the class demo, the host has {faults.join(' and ')}.</p> : null}

      {s.stage === 'loading' || (s.dataProgress > 0 && s.dataProgress < 1) ? (
        <div className="card">
          <div className="progress-label">
            <span>Downloading training data</span>
            <strong>{Math.round(s.dataProgress * 100)}%</strong>
          </div>
          <div className="progress" role="progressbar" aria-label="Dataset download" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(s.dataProgress * 100)}>
            <div className="progress-fill" style={{ width: `${Math.max(2, Math.min(100, s.dataProgress * 100))}%` }} />
          </div>
        </div>
      ) : null}

      <div className="stat-grid">
        <Stat label="Test accuracy" testId="stat-accuracy" value={fmtPct(s.accuracy)} accent>
          <Sparkline data={trend.map((p) => p.accuracy)} color="var(--good)" />
        </Stat>
        <Stat label="Loss" testId="stat-loss" value={fmtNum(s.loss, 3)}>
          <Sparkline data={trend.map((p) => p.loss)} color="var(--accent)" />
        </Stat>
        <Stat label="Step" testId="stat-step" value={String(s.step)} sub={s.globalStep > s.step ? `swarm at ${s.globalStep}` : undefined} />
        <Stat label="Steps / s" value={fmtNum(s.stepsPerSec, 1)} sub={`${fmtCompact(s.samplesPerSec)} samples/s`} />
        <Stat label="Backend" testId="stat-backend" value={s.backend ?? '—'} color={s.backend ? backendColor(s.backend) : undefined} sub={[s.computeThread === 'worker' ? 'model on a worker thread' : s.computeThread === 'main' ? 'model on the page thread' : '', s.backendReason].filter(Boolean).join(' · ') || undefined} />
        <Stat label="Neighbours" testId="stat-peers" value={String(s.neighbors.length)} sub={`${s.peers.length} in the room`} />
        <Stat label="Sent" testId="stat-bytes-sent" value={fmtBytes(s.bytesSent)} sub="peer-to-peer" />
        <Stat label="Received" testId="stat-bytes-received" value={fmtBytes(s.bytesReceived)} sub="peer-to-peer" />
        <Stat label="Samples contributed" value={fmtCompact(s.samples)} />
        <Stat label="Learning rate" value={fmtNum(s.lr, 4)} sub={s.h !== null ? `sync every H = ${s.h} steps` : undefined} />
      </div>

      <div className="two-col">
        <div className="card">
          <h2>Neighbours</h2>
          {s.neighbors.length ? (
            <ul className="chips" aria-label="Neighbours">
              {s.neighbors.map((n) => <li key={n} className="chip">{n.slice(0, 8)}</li>)}
            </ul>
          ) : (
            <p className="muted">No direct neighbours yet{s.stage === 'training' ? ' — training alone until someone joins.' : '.'}</p>
          )}
          {s.consensus !== null ? <p className="small">Distance of this model from the neighbours’ average: <strong>{fmtNum(s.consensus, 4)}</strong></p> : null}
          {s.self ? <p className="muted small">This tab is <code>{s.self.slice(0, 8)}</code>.</p> : null}
        </div>
        <div className="card">
          <h2>Activity</h2>
          <ol className="log" aria-label="Event log" aria-live="off">
            {s.log.length ? s.log.slice(-12).reverse().map((line, i) => <li key={`${s.log.length - i}`}>{line}</li>) : <li className="muted">Nothing yet.</li>}
          </ol>
        </div>
      </div>
      <p className="muted small center">Keep this tab open. You can pause or leave at any time; the swarm carries on.</p>
    </section>
  )
}

function Stat({ label, value, sub, testId, accent, color, children }: {
  label: string
  value: string
  sub?: string
  testId?: string
  accent?: boolean
  color?: string
  children?: ReactNode
}) {
  return (
    <div className={`stat card${accent ? ' accent' : ''}`}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId} style={color ? { color } : undefined}>{value}</div>
      {sub ? <div className="stat-sub" title={sub}>{sub}</div> : null}
      {children}
    </div>
  )
}

