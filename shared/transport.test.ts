import { describe, expect, it } from 'vitest'
import { acceptClock, CLOCK_MAX_STEPS_PER_SEC, CLOCK_SLACK_STEPS, ProgressClock } from './transport'

/** A clock on a hand-driven time source (ms). */
function clockAt(opts: { roomProgress?: () => number | null } = {}) {
  let now = 1_000
  const clock = new ProgressClock({ now: () => now, ...opts })
  return { clock, tick: (ms: number) => void (now += ms) }
}

describe('ProgressClock: remote counters are bounded (docs/security.md)', () => {
  it('refuses 1e300, Infinity, NaN and negatives; merges what is within the ceiling', () => {
    const { clock } = clockAt()
    for (const bad of [1e300, Infinity, NaN, -1]) expect(clock.observe(bad)).toBe(false)
    expect(clock.value).toBe(0)
    expect(clock.refused).toBe(4)
    expect(clock.observe(CLOCK_SLACK_STEPS)).toBe(true)
    expect(clock.value).toBe(CLOCK_SLACK_STEPS)
    expect(clock.observe(CLOCK_SLACK_STEPS + 1)).toBe(false)
    // Behind us is always fine (nothing to merge).
    expect(clock.observe(3)).toBe(true)
  })

  it('the ceiling is own progress + slack, growing at the fastest believable rate', () => {
    const { clock, tick } = clockAt()
    expect(clock.ceiling()).toBe(CLOCK_SLACK_STEPS)
    clock.advance(500) // own steps, a checkpoint: trusted
    expect(clock.ceiling()).toBe(500 + CLOCK_SLACK_STEPS)
    tick(2_000)
    expect(clock.ceiling()).toBe(500 + CLOCK_SLACK_STEPS + 2 * CLOCK_MAX_STEPS_PER_SEC)
  })

  it('remote merges never raise the floor: a peer pushing to just below the ceiling again and again cannot walk it up', () => {
    const { clock } = clockAt()
    for (let i = 0; i < 100; i++) {
      expect(clock.observe(clock.ceiling())).toBe(true)
      // Own steps on top of the merged value (what an algorithm does) add only themselves.
      clock.advance(clock.value + 1)
    }
    expect(clock.value).toBeLessThanOrEqual(CLOCK_SLACK_STEPS + 100)
    expect(clock.ceiling()).toBe(CLOCK_SLACK_STEPS + 100)
  })

  it('the room\'s published progress moves the ceiling to it + slack, and restarts the rate term', () => {
    const { clock, tick } = clockAt()
    tick(60_000)
    expect(clock.ceiling()).toBe(CLOCK_SLACK_STEPS + 60 * CLOCK_MAX_STEPS_PER_SEC)
    clock.setRoomProgress(20_000)
    expect(clock.ceiling()).toBe(20_000 + CLOCK_SLACK_STEPS)
    expect(clock.observe(20_500)).toBe(true) // a joiner catches up with the room at once
    expect(clock.observe(60_000)).toBe(false)
    tick(1_000)
    expect(clock.ceiling()).toBe(20_000 + CLOCK_SLACK_STEPS + CLOCK_MAX_STEPS_PER_SEC)
  })

  it('a live room progress (the memory network\'s) takes precedence', () => {
    let room: number | null = 5_000
    const { clock } = clockAt({ roomProgress: () => room })
    clock.setRoomProgress(1)
    expect(clock.ceiling()).toBe(5_000 + CLOCK_SLACK_STEPS)
    room = null
    expect(clock.ceiling()).toBe(1 + CLOCK_SLACK_STEPS)
  })

  it('acceptClock: a clock beyond the ceiling is not merged and counts against its sender', () => {
    const rejected: string[] = []
    const mesh = { clock: clockAt().clock, rejectFrom: (p: string, why: string) => void rejected.push(`${p}: ${why}`) }
    expect(acceptClock(mesh, { from: 'a', clock: 10 })).toBe(true)
    expect(acceptClock(mesh, { from: 'x', clock: 1e300 })).toBe(false)
    expect(mesh.clock.value).toBe(10)
    expect(rejected).toHaveLength(1)
    expect(rejected[0]).toMatch(/^x: clock 1e\+300 beyond the bound/)
  })
})
