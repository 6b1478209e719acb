import { describe, expect, it } from 'vitest'
import { linkReportSchema } from '../../shared/protocol/signaling'
import { candidateTypeOf, connectivityFromStats, describeConnectivity, isRelayed, summarizeConnectivity } from './connectivity'

// Trimmed from a real @roamhq/wrtc getStats() on a loopback link (Chromium's shapes).
const wrtcStats = [
  { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', nominated: true, currentRoundTripTime: 0.0123 },
  { id: 'P2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R2', state: 'succeeded', nominated: false, currentRoundTripTime: 0 },
  { id: 'L1', type: 'local-candidate', candidateType: 'relay' },
  { id: 'L2', type: 'local-candidate', candidateType: 'host' },
  { id: 'R1', type: 'remote-candidate', candidateType: 'srflx' },
  { id: 'R2', type: 'remote-candidate', candidateType: 'host' },
  { id: 'T', type: 'transport', selectedCandidatePairId: 'P1', iceState: 'connected' },
]

describe('connectivity from getStats()', () => {
  it('the transport names the selected pair: its candidate types and RTT in ms', () => {
    expect(connectivityFromStats(wrtcStats)).toEqual({ gathered: ['host', 'relay'], local: 'relay', remote: 'srflx', rttMs: 12.3 })
  })

  it('Firefox marks the pair `selected` instead; types seen in icecandidate events count as gathered', () => {
    const ff = wrtcStats.filter((s) => s.type !== 'transport').map((s) => (s.id === 'P2' ? { ...s, selected: true, nominated: true } : { ...s, nominated: false }))
    expect(connectivityFromStats(ff, ['srflx'])).toEqual({ gathered: ['host', 'srflx', 'relay'], local: 'host', remote: 'host', rttMs: 0 })
  })

  it('no pair yet: nulls; what it produces always passes the report schema', () => {
    const c = connectivityFromStats([{ id: 'L', type: 'local-candidate', candidateType: 'host' }, { id: 'X', type: 'local-candidate', candidateType: 'bogus' }])
    expect(c).toEqual({ gathered: ['host'], local: null, remote: null, rttMs: null })
    expect(isRelayed(c)).toBeNull()
    expect(linkReportSchema.parse({ sent: 1, received: 2, ice: connectivityFromStats(wrtcStats) }).ice?.local).toBe('relay')
  })

  it('reads the type from a candidate line', () => {
    expect(candidateTypeOf('candidate:1 1 udp 41885439 10.99.0.1 50000 typ relay raddr 10.99.1.2 rport 40000')).toBe('relay')
    expect(candidateTypeOf('candidate:1 1 udp 2122 10.0.0.2 5000 typ host')).toBe('host')
    expect(candidateTypeOf('garbage')).toBeNull()
  })
})

describe('summaries', () => {
  it('counts direct, relayed and connecting links and takes the median RTT', () => {
    const s = summarizeConnectivity([
      { gathered: ['host'], local: 'host', remote: 'host', rttMs: 2 },
      { gathered: ['host'], local: 'srflx', remote: 'host', rttMs: 10 },
      { gathered: ['relay'], local: 'host', remote: 'relay', rttMs: 40 },
      { gathered: [], local: null, remote: null, rttMs: null },
      undefined,
    ])
    expect(s).toEqual({ direct: 2, relayed: 1, pending: 1, medianRttMs: 10 })
    expect(describeConnectivity(s)).toBe('2 direct, 1 relayed, 1 connecting')
    expect(summarizeConnectivity([]).medianRttMs).toBeNull()
  })
})
