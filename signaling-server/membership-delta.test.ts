import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../shared/config'
import { applyMembershipDelta, membershipDeltaSchema, type MembershipAnnouncement } from '../shared/protocol/signaling'
import { membershipDelta } from './handlers'

const base: MembershipAnnouncement = {
  v: 1, room: 'lab', epoch: 4, peers: ['a', 'b', 'c'], roles: { ps: null, writer: 'a' },
  config: defaultConfig(), run: 1, paused: false, diverged: null,
}
const next = (over: Partial<MembershipAnnouncement>): MembershipAnnouncement => ({ ...base, ...over })

describe('membership deltas', () => {
  it('say only what changed, and applying one gives the announcement it came from', () => {
    const cases: MembershipAnnouncement[] = [
      next({ epoch: 5, peers: ['a', 'b', 'c', 'd'] }),
      next({ epoch: 7, peers: ['a', 'c'] }),
      next({ epoch: 9, peers: ['b', 'c', 'd', 'e'], roles: { ps: null, writer: 'b' } }),
      next({ epoch: 5, paused: true }),
    ]
    for (const m of cases) {
      const d = membershipDelta(base, m)!
      expect(membershipDeltaSchema.safeParse(d).success).toBe(true)
      expect(d.base).toBe(4)
      // The roster never travels again: at most the ids that changed.
      expect(d.added.length + d.removed.length).toBe(
        m.peers.filter((p) => !base.peers.includes(p)).length + base.peers.filter((p) => !m.peers.includes(p)).length)
      expect(applyMembershipDelta(base, d)).toEqual(m)
    }
  })

  it('fall back to the whole membership when a delta cannot say it', () => {
    expect(membershipDelta(undefined, base)).toBeNull()
    expect(membershipDelta(base, next({ epoch: 5, run: 2 }))).toBeNull()
    expect(membershipDelta(base, next({ epoch: 5, config: defaultConfig('ssgd') }))).toBeNull()
    // b left and came back within one batch: same ids, another order.
    expect(membershipDelta(base, next({ epoch: 6, peers: ['a', 'c', 'b'] }))).toBeNull()
  })

  it('a client not at the delta’s base, or a delta that would duplicate a peer, asks for a resync', () => {
    const d = membershipDelta(base, next({ epoch: 5, peers: ['a', 'b', 'c', 'd'] }))!
    expect(applyMembershipDelta(next({ epoch: 3 }), d)).toBeNull()
    expect(applyMembershipDelta(next({ room: 'other' }), d)).toBeNull()
    expect(applyMembershipDelta(base, { ...d, added: ['a'] })).toBeNull()
  })
})
