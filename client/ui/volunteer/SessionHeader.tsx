import { useState } from 'react'
import { ALGORITHM_INFO } from '../../../shared/config'
import type { SessionHandle, SessionSnapshot, SessionStage } from '../../session/types'

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

/** Paused by whom, and whether the swarm still counts on this tab. */
function stageHelp(s: SessionSnapshot, fallback: string): string {
  if (s.away === 'paused') return 'You paused this tab: it stepped out of the swarm, so nobody waits for it. Resume to rejoin.'
  if (s.away === 'hidden') return 'This tab is in the background: it stepped out of the swarm until you come back to it.'
  if (s.stage === 'paused') return s.step === 0 ? 'Ready. Training starts when the host presses Start.' : 'The host paused the room; training continues when they resume.'
  return fallback
}

/** The room, what this tab is doing, and the buttons to pause or leave. */
export function SessionHeader({ snapshot: s, session, onLeft }: { snapshot: SessionSnapshot; session: SessionHandle; onLeft: () => void }) {
  const stage = STAGE_TEXT[s.stage] ?? STAGE_TEXT.idle
  const algo = s.config ? ALGORITHM_INFO[s.config.algorithm] : null
  return (
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
        <div className="muted small">{stageHelp(s, stage.help)}</div>
      </div>
      <SessionActions snapshot={s} session={session} onLeft={onLeft} />
    </div>
  )
}

function SessionActions({ snapshot: s, session, onLeft }: { snapshot: SessionSnapshot; session: SessionHandle; onLeft: () => void }) {
  const [leaving, setLeaving] = useState(false)
  const leave = async () => {
    setLeaving(true)
    try {
      await session.leave()
    } finally {
      onLeft()
    }
  }
  return (
    <div className="session-actions">
      {s.away === 'paused' ? (
        <button className="btn primary" onClick={() => session.resume()}>Resume</button>
      ) : (
        <button className="btn" onClick={() => session.pause()} disabled={s.stage === 'done' || s.stage === 'error' || s.stage === 'idle'}>Pause</button>
      )}
      <button className="btn danger" onClick={leave} disabled={leaving}>{leaving ? 'Leaving…' : 'Leave'}</button>
    </div>
  )
}

/** Why the run is not going as usual: an error, a divergence, or the host's fault injection on this tab. */
export function SessionBanners({ snapshot: s }: { snapshot: SessionSnapshot }) {
  const faults = [
    s.faults.slowFactor > 1 ? `slowed this tab down ×${s.faults.slowFactor}` : '',
    s.faults.latencyMs > 0 ? `added ${s.faults.latencyMs} ms of latency to every message it sends` : '',
  ].filter(Boolean)
  return (
    <>
      {s.error ? <p className="banner error" role="alert">{s.error}</p> : null}
      {s.diverged ? (
        <p className="banner warn" role="status" data-testid="diverged-banner">
          The run diverged at step {s.diverged.step}: {s.diverged.reason}. This tab stays in the room and waits. {s.diverged.hint}
        </p>
      ) : null}
      {faults.length ? <p className="banner warn" role="status" data-testid="fault-banner">For the class demo, the host has {faults.join(' and ')}.</p> : null}
    </>
  )
}
