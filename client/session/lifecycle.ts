import type { AwayReason } from '../../shared/protocol/signaling'

/**
 * A volunteer's life as one pure reducer: every input the session gets (the user, the page, the
 * room's announcements, the server removing us, the model diverging) is an event, and the reducer
 * alone decides the next state and what the driver (swarm-session.ts) must do about it. The driver
 * performs effects and never reads or writes these fields itself, so "may this tab step now?" and
 * "what does it show?" have one answer each. Exhaustively tested in lifecycle.test.ts.
 */

export type Phase =
  /** Constructed, not started. */
  | 'idle'
  /** Choosing a backend; the first join is in flight. */
  | 'starting'
  /** Joined, not in the roster yet: loading data and model, or waiting for the room to list us. */
  | 'pending'
  /** In the roster and stepping. */
  | 'training'
  /** Stepped out of the roster (the user paused, or the tab is hidden); still joined. */
  | 'away'
  /** In the roster, but the host paused the room. */
  | 'paused'
  /** This tab's model diverged: it stays joined and waits for a new run. */
  | 'diverged'
  /** Dropped (evicted, reconnected, left out of the roster): joining again under a new id. */
  | 'rejoining'
  /** Evicted recently: the server asked us to wait before joining again. */
  | 'cooldown'
  /** Handing the model over before disconnecting. */
  | 'leaving'
  /** Ended: reached its step budget, left, was removed by the host, or failed. */
  | 'done'
  | 'error'

export const PHASES: readonly Phase[] = [
  'idle', 'starting', 'pending', 'training', 'away', 'paused', 'diverged', 'rejoining', 'cooldown', 'leaving', 'done', 'error',
]

export interface Lifecycle {
  readonly phase: Phase
  /** Why the tab wants to be out of the roster (user pause, hidden page); empty = in. Kept in every phase. */
  readonly away: readonly AwayReason[]
  /** We have a peer id in the room (joined, not ended). */
  readonly joined: boolean
  /** The room has been told we stepped out: it lists us again only after we say ready. */
  readonly toldAway: boolean
  /** Joined but not in the roster (loading, or out after stepping away or a new run). */
  readonly pending: boolean
  /** The host paused the room (or the room paused itself after a divergence). */
  readonly roomPaused: boolean
  /** This run's model diverged. Cleared by a new run or a rejoin (both start the model afresh). */
  readonly diverged: boolean
}

export type LifecycleEvent =
  | { type: 'start' }
  /** A join (first or again) was acknowledged: a new peer id, outside the roster until ready. */
  | { type: 'joined' }
  /** A room announcement. `inRoster`: it lists us; `newRun`: another run or config than before. */
  | { type: 'membership'; inRoster: boolean; paused: boolean; newRun: boolean }
  | { type: 'step-out'; reason: AwayReason }
  | { type: 'step-back'; reason: AwayReason }
  | { type: 'diverged' }
  /** The server dropped us: evicted by neighbours, or kicked by the host. */
  | { type: 'removed'; why: 'evicted' | 'kicked' }
  /** The socket came back after a drop (server restart, network blip): our old id is gone. */
  | { type: 'reconnected' }
  /** A rejoin was refused for now (eviction cooldown). */
  | { type: 'cooldown' }
  /** The step budget (maxSteps) is spent. */
  | { type: 'finished' }
  | { type: 'leave' }
  /** Left: the hand-over is done (or its budget ran out). */
  | { type: 'left' }
  | { type: 'failed' }

export type Effect =
  /** Tell the room we stepped out, showing this reason. */
  | { type: 'tell-away'; reason: AwayReason }
  /** Restart the run: `keepTrainer` keeps data and model (stepping out and back in). */
  | { type: 'restart-run'; keepTrainer: boolean }
  /** Join again under a new id (the driver waits, joins, and dispatches 'joined'). */
  | { type: 'rejoin'; reason: string }
  /** Wake whatever waits on this state (the step gate, becomeReady). */
  | { type: 'wake' }
  /** Disconnect for good. */
  | { type: 'shutdown'; reason: string }

export const initialLifecycle: Lifecycle = {
  phase: 'idle', away: [], joined: false, toldAway: false, pending: false, roomPaused: false, diverged: false,
}

const ENDED: readonly Phase[] = ['done', 'error']

/** The phase the flags describe, for the phases that are not sticky (see reduce). */
function settle(s: Omit<Lifecycle, 'phase'> & { phase: Phase }): Lifecycle {
  if (ENDED.includes(s.phase) || s.phase === 'leaving' || s.phase === 'rejoining' || s.phase === 'cooldown' || s.phase === 'idle') return s
  if (s.phase === 'starting' && !s.joined) return s
  const phase: Phase = s.diverged ? 'diverged' : s.away.length > 0 ? 'away' : s.pending ? 'pending' : s.roomPaused ? 'paused' : 'training'
  return { ...s, phase }
}

/** The reason the room is shown while away: a user's pause wins over a hidden page. */
export function shownAway(s: Lifecycle): AwayReason | null {
  if (s.away.length === 0) return null
  return s.away.includes('paused') ? 'paused' : 'hidden'
}

/** May the training loop take a step now? */
export function canStep(s: Lifecycle): boolean {
  return s.phase === 'training'
}

/** The next state and what the driver must do. Never throws; events that do not apply change nothing. */
export function reduce(s: Lifecycle, e: LifecycleEvent): Step {
  const same = { state: s, effects: [] as Effect[] }
  if (ENDED.includes(s.phase)) return same
  switch (e.type) {
    case 'start':
      return s.phase === 'idle' ? { state: { ...s, phase: 'starting' }, effects: [] } : same
    case 'joined': {
      // A new id: out of the roster until ready. A tab that wants to be away says so at once,
      // so the dashboard lists it as away rather than loading.
      const away = shownAway(s)
      const phase: Phase = s.phase === 'rejoining' || s.phase === 'cooldown' || s.phase === 'starting' ? 'pending' : s.phase
      const state = settle({ ...s, phase, joined: true, pending: true, toldAway: away !== null, diverged: s.phase === 'rejoining' || s.phase === 'cooldown' ? false : s.diverged })
      return { state, effects: away ? [{ type: 'tell-away', reason: away }] : [] }
    }
    case 'membership':
      return onMembership(s, e)
    case 'step-out':
      return onStepOut(s, e.reason)
    case 'step-back':
      return onStepBack(s, e.reason)
    case 'diverged':
      return s.joined && !s.diverged ? { state: settle({ ...s, diverged: true }), effects: [] } : same
    case 'removed':
      if (e.why === 'kicked') return { state: { ...s, phase: 'done', joined: false }, effects: [{ type: 'shutdown', reason: 'removed by the host' }] }
      if (s.phase === 'rejoining' || s.phase === 'leaving') return same
      return { state: { ...s, phase: 'rejoining', joined: false }, effects: [{ type: 'rejoin', reason: 'the room dropped this tab after missed deadlines' }] }
    case 'reconnected':
      if (s.phase === 'rejoining' || s.phase === 'leaving' || s.phase === 'idle' || s.phase === 'starting') return same
      return { state: { ...s, phase: 'rejoining', joined: false }, effects: [{ type: 'rejoin', reason: 'reconnected to the server' }] }
    case 'cooldown':
      return s.phase === 'rejoining' || s.phase === 'cooldown' ? { state: { ...s, phase: 'cooldown' }, effects: [] } : same
    case 'finished':
      return { state: { ...s, phase: 'done' }, effects: [] }
    case 'leave':
      return s.phase === 'leaving' ? same : { state: { ...s, phase: 'leaving' }, effects: [] }
    case 'left':
      return { state: { ...s, phase: 'done', joined: false }, effects: [{ type: 'shutdown', reason: 'left' }] }
    case 'failed':
      return { state: { ...s, phase: 'error', joined: false }, effects: [] }
    default: {
      const never: never = e
      return never
    }
  }
}

type Step = { state: Lifecycle; effects: Effect[] }

function onMembership(s: Lifecycle, e: Extract<LifecycleEvent, { type: 'membership' }>): Step {
  if (!s.joined || s.phase === 'rejoining' || s.phase === 'cooldown' || s.phase === 'leaving') return { state: s, effects: [] }
  let pending = s.pending
  // A new run empties the roster: everyone reloads and re-enters when ready.
  if (e.newRun && !e.inRoster) pending = true
  // While away, a roster that still lists us was sent before the room saw our 'away'.
  const entered = pending && !s.toldAway && e.inRoster
  if (entered) pending = false
  if (!pending && !e.inRoster) {
    // Not in the roster any more, and not expecting to be out: join again rather than
    // train alone (a kick also disconnects us and arrives as 'removed').
    return { state: { ...s, phase: 'rejoining', joined: false, roomPaused: e.paused }, effects: [{ type: 'rejoin', reason: 'no longer in the roster' }] }
  }
  const state = settle({ ...s, pending, roomPaused: e.paused, diverged: e.newRun ? false : s.diverged })
  const effects: Effect[] = []
  if (e.newRun) effects.push({ type: 'restart-run', keepTrainer: false })
  else if (!e.paused || entered) effects.push({ type: 'wake' })
  return { state, effects }
}

function onStepOut(s: Lifecycle, reason: AwayReason): Step {
  const next = { ...s, away: s.away.includes(reason) ? s.away : [...s.away, reason] }
  if (!s.joined) return { state: settle(next), effects: [] }
  const effects: Effect[] = []
  // End the step in flight and drop the links now; the next run keeps data and model and waits
  // until we are back (reusing the old mesh after the roster went on without us left stale links
  // that stalled everyone on our return).
  if (!s.toldAway && !s.pending && s.phase !== 'leaving') effects.push({ type: 'restart-run', keepTrainer: true })
  effects.push({ type: 'tell-away', reason: shownAway(next)! })
  return { state: settle({ ...next, toldAway: true, pending: true }), effects }
}

function onStepBack(s: Lifecycle, reason: AwayReason): Step {
  if (!s.away.includes(reason)) return { state: s, effects: [] }
  const away = s.away.filter((r) => r !== reason)
  if (away.length > 0) {
    // Still away for the other reason: only the label changes.
    const next = settle({ ...s, away })
    return { state: next, effects: s.toldAway && s.joined ? [{ type: 'tell-away', reason: shownAway(next)! }] : [] }
  }
  return { state: settle({ ...s, away, toldAway: false }), effects: [{ type: 'wake' }] }
}
