import { describe, expect, it } from 'vitest'
import type { AwayReason } from '../../shared/protocol/signaling'
import { canStep, initialLifecycle, PHASES, reduce, shownAway, type Effect, type Lifecycle, type LifecycleEvent } from './lifecycle'

/** Applies events in order, collecting every effect. */
function run(events: LifecycleEvent[], from: Lifecycle = initialLifecycle): { state: Lifecycle; effects: Effect[] } {
  let state = from
  const effects: Effect[] = []
  for (const e of events) {
    const r = reduce(state, e)
    state = r.state
    effects.push(...r.effects)
  }
  return { state, effects }
}

const member = (inRoster: boolean, over: Partial<{ paused: boolean; newRun: boolean }> = {}): LifecycleEvent =>
  ({ type: 'membership', inRoster, paused: false, newRun: false, ...over })

/** Started, joined and in the roster: where most stories begin. */
const TRAINING = run([{ type: 'start' }, { type: 'joined' }, member(true, { newRun: true })]).state

const ALL_EVENTS: LifecycleEvent[] = [
  { type: 'start' }, { type: 'joined' },
  ...[true, false].flatMap((inRoster) => [true, false].flatMap((paused) => [true, false].map((newRun) => ({ type: 'membership' as const, inRoster, paused, newRun })))),
  { type: 'step-out', reason: 'paused' }, { type: 'step-out', reason: 'hidden' },
  { type: 'step-back', reason: 'paused' }, { type: 'step-back', reason: 'hidden' },
  { type: 'diverged' }, { type: 'removed', why: 'evicted' }, { type: 'removed', why: 'kicked' },
  { type: 'reconnected' }, { type: 'cooldown' }, { type: 'finished' }, { type: 'leave' }, { type: 'left' }, { type: 'failed' },
]

const AWAY_SETS: AwayReason[][] = [[], ['paused'], ['hidden'], ['paused', 'hidden']]

function* allStates(): Generator<Lifecycle> {
  for (const phase of PHASES)
    for (const away of AWAY_SETS)
      for (let bits = 0; bits < 32; bits++)
        yield {
          phase, away, joined: !!(bits & 1), toldAway: !!(bits & 2), pending: !!(bits & 4), roomPaused: !!(bits & 8), diverged: !!(bits & 16),
        }
}

describe('session lifecycle reducer: every state × every event', () => {
  it('never throws; ended phases absorb every event; only training may step; away wishes survive every event but a step-back', () => {
    // Plain checks collected into a list (a vitest expect per reduction would take half a minute).
    const bad: string[] = []
    const check = (ok: boolean, what: string, s: Lifecycle, e: LifecycleEvent) => {
      if (!ok && bad.length < 20) bad.push(`${what}: ${JSON.stringify(s)} + ${JSON.stringify(e)}`)
    }
    let n = 0
    for (const s of allStates())
      for (const e of ALL_EVENTS) {
        const { state, effects } = reduce(s, e)
        n++
        check(PHASES.includes(state.phase), 'unknown phase', s, e)
        if (s.phase === 'done' || s.phase === 'error') check(state === s && effects.length === 0, 'an ended tab changed', s, e)
        check(canStep(state) === (state.phase === 'training'), 'canStep outside training', s, e)
        if (e.type !== 'step-back') check(s.away.every((r) => state.away.includes(r)), 'an away wish was lost', s, e)
        // The room is only ever told about us while we hold an id in it.
        if (effects.some((f) => f.type === 'tell-away')) check(state.joined, 'told the room while not joined', s, e)
        // Whatever the reducer produces for a joined tab is settled: its phase says what its flags
        // say. (The generated inputs include combinations no run reaches; they are left alone.)
        if (state !== s && state.joined && ['pending', 'training', 'away', 'paused', 'diverged'].includes(state.phase)) {
          const expected = state.diverged ? 'diverged' : state.away.length ? 'away' : state.pending ? 'pending' : state.roomPaused ? 'paused' : 'training'
          check(state.phase === expected, `phase ${state.phase}, flags say ${expected}`, s, e)
        }
        // A rejoin is asked for exactly when the phase turns to 'rejoining'.
        const rejoins = effects.filter((f) => f.type === 'rejoin').length
        check(rejoins === (state.phase === 'rejoining' && s.phase !== 'rejoining' ? 1 : 0), 'rejoin effect without the phase', s, e)
      }
    expect(bad).toEqual([])
    expect(n).toBe(PHASES.length * AWAY_SETS.length * 32 * ALL_EVENTS.length)
  })
})

describe('session lifecycle reducer: stories', () => {
  it('start → joined (pending) → listed by the room → training', () => {
    const a = run([{ type: 'start' }])
    expect(a.state.phase).toBe('starting')
    const b = run([{ type: 'joined' }], a.state)
    expect(b.state).toMatchObject({ phase: 'pending', joined: true, pending: true })
    expect(canStep(b.state)).toBe(false)
    const c = reduce(b.state, member(true, { newRun: true }))
    expect(c.state.phase).toBe('training')
    expect(c.effects).toEqual([{ type: 'restart-run', keepTrainer: false }])
  })

  it('pause steps out at once (links dropped, room told); a roster still listing us does not count; resume re-enters', () => {
    const out = reduce(TRAINING, { type: 'step-out', reason: 'paused' })
    expect(out.state).toMatchObject({ phase: 'away', toldAway: true, pending: true })
    expect(out.effects).toEqual([{ type: 'restart-run', keepTrainer: true }, { type: 'tell-away', reason: 'paused' }])
    // Sent before the room saw our 'away': we are not back in.
    expect(reduce(out.state, member(true)).state.phase).toBe('away')
    const back = reduce(out.state, { type: 'step-back', reason: 'paused' })
    expect(back.state).toMatchObject({ phase: 'pending', toldAway: false })
    expect(back.effects).toEqual([{ type: 'wake' }])
    expect(reduce(back.state, member(true)).state.phase).toBe('training')
  })

  it('paused and hidden: the label follows the reason that remains; visible again while paused stays out', () => {
    const both = run([{ type: 'step-out', reason: 'hidden' }, { type: 'step-out', reason: 'paused' }], TRAINING)
    expect(shownAway(both.state)).toBe('paused')
    const visible = reduce(both.state, { type: 'step-back', reason: 'hidden' })
    expect(visible.state.phase).toBe('away')
    expect(visible.effects).toEqual([{ type: 'tell-away', reason: 'paused' }])
    const resumed = reduce(both.state, { type: 'step-back', reason: 'paused' })
    expect(shownAway(resumed.state)).toBe('hidden')
    expect(resumed.effects).toEqual([{ type: 'tell-away', reason: 'hidden' }])
    // Stepping back for a reason we were not away for changes nothing.
    expect(reduce(TRAINING, { type: 'step-back', reason: 'hidden' }).state).toBe(TRAINING)
  })

  it('a pause before the join is remembered and told to the room once joined', () => {
    const r = run([{ type: 'start' }, { type: 'step-out', reason: 'paused' }, { type: 'joined' }])
    expect(r.state).toMatchObject({ phase: 'away', toldAway: true })
    expect(r.effects).toEqual([{ type: 'tell-away', reason: 'paused' }])
  })

  it('the host pauses and resumes the room', () => {
    const p = reduce(TRAINING, member(true, { paused: true }))
    expect(p.state.phase).toBe('paused')
    expect(canStep(p.state)).toBe(false)
    const r = reduce(p.state, member(true))
    expect(r.state.phase).toBe('training')
    expect(r.effects).toEqual([{ type: 'wake' }])
  })

  it('a new run reloads: out of the roster until listed again', () => {
    const n = reduce(TRAINING, member(false, { newRun: true }))
    expect(n.state.phase).toBe('pending')
    expect(n.effects).toEqual([{ type: 'restart-run', keepTrainer: false }])
    expect(reduce(n.state, member(true)).state.phase).toBe('training')
  })

  it('dropped from the roster unexpectedly → rejoin; evicted → rejoin, maybe via a cooldown; kicked → done', () => {
    const gone = reduce(TRAINING, member(false))
    expect(gone.state.phase).toBe('rejoining')
    expect(gone.effects).toEqual([{ type: 'rejoin', reason: 'no longer in the roster' }])
    // While rejoining, more announcements and removals change nothing.
    expect(reduce(gone.state, member(false)).state).toBe(gone.state)
    expect(reduce(gone.state, { type: 'removed', why: 'evicted' }).state).toBe(gone.state)
    const ev = run([{ type: 'removed', why: 'evicted' }, { type: 'cooldown' }], TRAINING)
    expect(ev.state.phase).toBe('cooldown')
    expect(ev.effects.map((f) => f.type)).toEqual(['rejoin'])
    expect(reduce(ev.state, { type: 'joined' }).state).toMatchObject({ phase: 'pending', joined: true })
    const kicked = reduce(TRAINING, { type: 'removed', why: 'kicked' })
    expect(kicked.state.phase).toBe('done')
    expect(kicked.effects).toEqual([{ type: 'shutdown', reason: 'removed by the host' }])
  })

  it('a diverged model stops stepping until a new run (or a rejoin) starts a fresh one', () => {
    const d = reduce(TRAINING, { type: 'diverged' })
    expect(d.state.phase).toBe('diverged')
    expect(canStep(d.state)).toBe(false)
    expect(reduce(d.state, member(true, { paused: true })).state.phase).toBe('diverged')
    expect(reduce(d.state, member(false, { newRun: true })).state).toMatchObject({ phase: 'pending', diverged: false })
    const re = run([{ type: 'removed', why: 'evicted' }, { type: 'joined' }], d.state)
    expect(re.state).toMatchObject({ phase: 'pending', diverged: false })
  })

  it('leave: announcements are ignored while handing over; left → done and disconnect; a failure ends everything', () => {
    const l = reduce(TRAINING, { type: 'leave' })
    expect(l.state.phase).toBe('leaving')
    expect(reduce(l.state, member(false)).state).toBe(l.state)
    const done = reduce(l.state, { type: 'left' })
    expect(done.state.phase).toBe('done')
    expect(done.effects).toEqual([{ type: 'shutdown', reason: 'left' }])
    const failed = reduce(TRAINING, { type: 'failed' })
    expect(failed.state.phase).toBe('error')
    for (const e of ALL_EVENTS) expect(reduce(failed.state, e).state).toBe(failed.state)
  })
})
