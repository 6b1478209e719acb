import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../shared/config'
import { applyHistoryDelta, historyDeltaSchema, historyFromSnapshot, historySnapshotSchema, HISTORY_DELTA_MAX_POINTS } from '../shared/protocol/history'
import { appendPoint, feedCursorAtEnd, historySnapshot, newRun, nextHistoryDelta, type HistoryPoint, type RunRecord } from './history'

const point = (step: number): HistoryPoint => ({ t: step, loss: 1, accuracy: 0.5, globalStep: step, bytes: step, peers: 2, lr: 0.05, h: null, consensus: null })
const runWith = (run: number, n: number): RunRecord => {
  const r = newRun(run, defaultConfig(), 1000 * run)
  for (let i = 0; i < n; i++) appendPoint(r, point(i))
  return r
}

describe('history feed (spectators: a snapshot, then deltas)', () => {
  it('a delta carries only the points after the cursor, and the client state follows', () => {
    const runs = [runWith(0, 3)]
    const snap = historySnapshotSchema.parse(historySnapshot('lab', 0, runs))
    let state = historyFromSnapshot(snap)
    let cursor = feedCursorAtEnd(runs)
    expect(nextHistoryDelta('lab', runs, cursor)).toBeNull()
    appendPoint(runs[0], point(3))
    appendPoint(runs[0], point(4))
    const next = nextHistoryDelta('lab', runs, cursor)
    if (!next || next === 'resync') throw new Error('expected a delta')
    expect(historyDeltaSchema.parse(next.delta)).toMatchObject({ run: 0, from: 3, points: [point(3), point(4)] })
    expect(next.delta.config).toBeUndefined()
    cursor = next.cursor
    state = applyHistoryDelta(state, next.delta)!
    expect(state.runs[0].points.map((p) => p.globalStep)).toEqual([0, 1, 2, 3, 4])
    expect(nextHistoryDelta('lab', runs, cursor)).toBeNull()
  })

  it('a new run opens with its config; overlapping points are skipped; a gap asks for a resync', () => {
    const runs = [runWith(0, 2), runWith(1, 0)]
    const cursor = feedCursorAtEnd(runs)
    appendPoint(runs[1], point(0))
    const next = nextHistoryDelta('lab', runs, cursor)
    if (!next || next === 'resync') throw new Error('expected a delta')
    expect(next.delta).toMatchObject({ run: 1, from: 0, started: 1000 })
    expect(next.delta.config?.algorithm).toBe('dpsgd')
    // A page whose snapshot already had that point: applying the delta changes nothing.
    const fresh = historyFromSnapshot(historySnapshot('lab', 1, runs))
    expect(applyHistoryDelta(fresh, next.delta)!.runs[1].points).toHaveLength(1)
    // A page that misses points: null, it must resync.
    const behind = historyFromSnapshot(historySnapshot('lab', 0, [runWith(0, 2)]))
    expect(applyHistoryDelta(behind, { ...next.delta, run: 0, from: 5, config: undefined })).toBeNull()
  })

  it('thinning moves the points: the server answers with a snapshot instead of a delta', () => {
    const r = runWith(0, 7)
    const cursor = feedCursorAtEnd([r])
    appendPoint(r, point(7), 8) // the 8th point halves the series
    expect(nextHistoryDelta('lab', [r], cursor)).toBe('resync')
  })

  it('a delta holds at most HISTORY_DELTA_MAX_POINTS points and says more is pending', () => {
    const r = runWith(0, 0)
    const cursor = feedCursorAtEnd([r])
    for (let i = 0; i < HISTORY_DELTA_MAX_POINTS + 5; i++) appendPoint(r, point(i))
    const next = nextHistoryDelta('lab', [r], cursor)
    if (!next || next === 'resync') throw new Error('expected a delta')
    expect(next.delta.points).toHaveLength(HISTORY_DELTA_MAX_POINTS)
    expect(next.pending).toBe(true)
  })

  it('a snapshot keeps the newest runs within its point budget and counts the rest', () => {
    const runs = [runWith(0, 5), runWith(1, 5), runWith(2, 5)]
    const snap = historySnapshot('lab', 2, runs, 11)
    expect(snap.runs.map((r) => r.run)).toEqual([1, 2])
    expect(snap.omittedRuns).toBe(1)
    expect(snap.runs[1].count).toBe(5)
  })
})
