import { describe, expect, it } from 'vitest'
import { roomProgressStep } from './room-progress'

describe('roomProgressStep (the room progress a clock is bounded by, docs/security.md)', () => {
  const peers = (steps: Record<string, number>) => Object.entries(steps).map(([id, globalStep]) => ({ id, globalStep }))

  it('is the lower median of the other roster peers\' reports: one huge claim cannot stretch it', () => {
    const p = { checkpointStep: null, peers: peers({ me: 7, a: 100, b: 120, x: 1e12 }) }
    expect(roomProgressStep(p, 'me', ['me', 'a', 'b', 'x'])).toBe(120)
    expect(roomProgressStep(p, 'me', ['me', 'a', 'x'])).toBe(100)
  })

  it('leaves out peers that have reported nothing yet (a crowd of fresh joiners) and peers not in the roster', () => {
    const p = { checkpointStep: null, peers: peers({ a: 20_000, j1: 0, j2: 0, j3: 0, gone: 9e9 }) }
    expect(roomProgressStep(p, 'me', ['a', 'j1', 'j2', 'j3', 'me'])).toBe(20_000)
  })

  it('is at least the checkpoint step (the server accepted it as near the roster median), 0 when nothing is known', () => {
    expect(roomProgressStep({ checkpointStep: 500, peers: peers({ a: 10 }) }, 'me', ['a'])).toBe(500)
    expect(roomProgressStep({ checkpointStep: null, peers: [] }, 'me', [])).toBe(0)
  })
})
