import { useEffect, useRef, useState } from 'react'
import { fmtDuration, fmtInt, fmtPct } from './format'

/**
 * Where the run is going: progress toward the room's `totalSteps` and an ETA from the recent
 * rate. Shared by the dashboard, the projector and the volunteer page: feed it the swarm's global
 * step as it changes (a push, a report) and the run's config.
 *
 * @example
 * const p = useRunProgress(summary.globalStep, room.config.totalSteps, room.run)
 * return <RunProgress progress={p} />
 */

/** The rate is measured over the last this-many ms: long enough to smooth an averaging round's pause, short enough to follow a joiner. */
export const ETA_WINDOW_MS = 30_000
/** Observations kept (one per change of the step; pushes come twice a second at most). */
const MAX_OBSERVATIONS = 256

export interface StepObservation {
  at: number
  step: number
}

export interface RunProgressInfo {
  step: number
  total: number
  /** 0…1 */
  fraction: number
  /** Steps per second over the recent window; null until two observations span some time. */
  stepsPerSec: number | null
  /** Milliseconds left at the recent rate; null when unknown, 0 when done. */
  etaMs: number | null
  done: boolean
}

/** Pure: the progress from observations (oldest first) of the step. */
export function estimateProgress(obs: readonly StepObservation[], total: number, windowMs = ETA_WINDOW_MS): RunProgressInfo {
  const last = obs.at(-1)
  const step = last?.step ?? 0
  const safeTotal = Math.max(1, total)
  const done = step >= safeTotal
  const fraction = Math.min(1, Math.max(0, step / safeTotal))
  let stepsPerSec: number | null = null
  if (last) {
    const first = obs.find((o) => o.at >= last.at - windowMs) ?? last
    const dt = (last.at - first.at) / 1000
    if (dt >= 1 && last.step >= first.step) stepsPerSec = (last.step - first.step) / dt
  }
  const etaMs = done ? 0 : stepsPerSec && stepsPerSec > 0 ? ((safeTotal - step) / stepsPerSec) * 1000 : null
  return { step, total: safeTotal, fraction, stepsPerSec, etaMs, done }
}

/**
 * Observes `step` over time (a new run, `run`, starts the window over) and estimates the rest.
 * Re-renders when `step` changes, which is what drives the estimate.
 */
export function useRunProgress(step: number, total: number, run: number | string = 0): RunProgressInfo {
  const obs = useRef<StepObservation[]>([])
  const runRef = useRef(run)
  const [, setTick] = useState(0)
  useEffect(() => {
    if (runRef.current !== run) {
      runRef.current = run
      obs.current = []
    }
    const list = obs.current
    const prev = list.at(-1)
    if (prev && step < prev.step) list.length = 0 // a reset or a rollback: the old rate means nothing
    if (!prev || prev.step !== step || list.length === 0) {
      list.push({ at: Date.now(), step })
      if (list.length > MAX_OBSERVATIONS) list.splice(0, list.length - MAX_OBSERVATIONS)
      setTick((t) => t + 1)
    }
  }, [step, run])
  return estimateProgress(obs.current, total)
}

/** "about 3m 20s left", "done", or "estimating…" while the rate is unknown. */
export function etaText(p: RunProgressInfo): string {
  if (p.done) return 'done'
  if (p.etaMs === null) return p.step > 0 ? 'estimating time left…' : 'waiting for the first steps'
  return `about ${fmtDuration(p.etaMs)} left`
}

/** A progress bar with "Step X of N · 41%" and "about 3m left" (the page's existing .progress styles). */
export function RunProgress({ progress, big = false }: { progress: RunProgressInfo; big?: boolean }) {
  const p = progress
  return (
    <div className="run-progress" data-testid="run-progress" style={big ? { fontSize: '1.35rem' } : undefined}>
      <div className="progress-label">
        <span>Step {fmtInt(p.step)} of {fmtInt(p.total)} · {fmtPct(p.fraction, 0)}</span>
        <span className="muted" data-testid="run-eta">{etaText(p)}</span>
      </div>
      <div className="progress" role="progressbar" aria-label="Run progress" aria-valuemin={0} aria-valuemax={p.total} aria-valuenow={Math.min(p.step, p.total)} style={big ? { height: 18 } : undefined}>
        <div className="progress-fill" style={{ width: `${Math.max(1, p.fraction * 100).toFixed(1)}%` }} />
      </div>
    </div>
  )
}
