import { CANDIDATE_TYPES, type CandidateType, type LinkConnectivity } from '../../shared/protocol/signaling'

/**
 * How a link connects, read from RTCPeerConnection.getStats(): which candidate types this side
 * gathered (host, srflx from STUN, relay from TURN), the selected candidate pair's local and
 * remote types and its round-trip time. "Relayed" means either end of the pair is a TURN relay:
 * every byte then goes through a TURN server. Pure functions over stats objects (the W3C
 * webrtc-stats shapes Chromium, Firefox and @roamhq/wrtc return), so tests feed recorded ones.
 */

/** One getStats() sample per link this often: a few stats objects each, negligible next to a step. */
export const CONNECTIVITY_INTERVAL_MS = 5_000

type Stat = Record<string, unknown> & { id?: unknown; type?: unknown }

const isCandidateType = (t: unknown): t is CandidateType => (CANDIDATE_TYPES as readonly unknown[]).includes(t)

/** The candidate type in an ICE candidate line (`… typ relay …`), or null. */
export function candidateTypeOf(candidate: string | null | undefined): CandidateType | null {
  const m = /\btyp (\w+)/.exec(candidate ?? '')
  return m && isCandidateType(m[1]) ? m[1] : null
}

/**
 * The link's connectivity from one stats report. `gathered` adds the types seen in
 * 'icecandidate' events (a browser may leave unpaired candidates out of its stats).
 */
export function connectivityFromStats(stats: Iterable<Stat>, gathered: Iterable<CandidateType> = []): LinkConnectivity {
  const byId = new Map<unknown, Stat>()
  const types = new Set<CandidateType>(gathered)
  let selectedId: unknown = null
  let fallback: Stat | null = null
  for (const s of stats) {
    byId.set(s.id, s)
    if (s.type === 'local-candidate' && isCandidateType(s.candidateType)) types.add(s.candidateType)
    // Chromium and wrtc name the pair on the transport; Firefox marks it `selected`.
    if (s.type === 'transport' && typeof s.selectedCandidatePairId === 'string') selectedId = s.selectedCandidatePairId
    if (s.type === 'candidate-pair' && (s.selected === true || (s.nominated === true && s.state === 'succeeded'))) fallback ??= s
  }
  const pair = (selectedId !== null ? byId.get(selectedId) : undefined) ?? fallback
  const typeOf = (id: unknown): CandidateType | null => {
    const t = id === undefined ? undefined : byId.get(id)?.candidateType
    return isCandidateType(t) ? t : null
  }
  const rtt = pair?.currentRoundTripTime
  return {
    gathered: CANDIDATE_TYPES.filter((t) => types.has(t)),
    local: pair ? typeOf(pair.localCandidateId) : null,
    remote: pair ? typeOf(pair.remoteCandidateId) : null,
    rttMs: typeof rtt === 'number' && Number.isFinite(rtt) && rtt >= 0 ? Math.min(600_000, Math.round(rtt * 1e4) / 10) : null,
  }
}

/** Relayed when either end of the selected pair is a TURN relay; null while no pair is selected. */
export function isRelayed(c: LinkConnectivity): boolean | null {
  if (c.local === null && c.remote === null) return null
  return c.local === 'relay' || c.remote === 'relay'
}

export interface ConnectivitySummary {
  direct: number
  relayed: number
  /** Links without a selected pair yet. */
  pending: number
  /** Median RTT over links that have one (ms); null when none has. */
  medianRttMs: number | null
}

/** Counts per link kind and the median RTT: what the volunteer page and the peer table show. */
export function summarizeConnectivity(links: Iterable<LinkConnectivity | undefined>): ConnectivitySummary {
  const out: ConnectivitySummary = { direct: 0, relayed: 0, pending: 0, medianRttMs: null }
  const rtts: number[] = []
  for (const c of links) {
    if (!c) continue
    const r = isRelayed(c)
    if (r === null) out.pending++
    else if (r) out.relayed++
    else out.direct++
    if (c.rttMs !== null) rtts.push(c.rttMs)
  }
  if (rtts.length) {
    rtts.sort((a, b) => a - b)
    const mid = rtts.length >> 1
    out.medianRttMs = rtts.length % 2 ? rtts[mid] : (rtts[mid - 1] + rtts[mid]) / 2
  }
  return out
}

/** "2 direct, 1 relayed" (empty when there is no link). */
export function describeConnectivity(s: ConnectivitySummary): string {
  const parts: string[] = []
  if (s.direct) parts.push(`${s.direct} direct`)
  if (s.relayed) parts.push(`${s.relayed} relayed`)
  if (s.pending) parts.push(`${s.pending} connecting`)
  return parts.join(', ')
}

/** What a link needs to be sampled: its RTCPeerConnection, once simple-peer made it. */
export interface StatsSource {
  getStats(): Promise<RTCStatsReport>
}

/** One sample of a link; null when the connection is gone or its stats fail (never throws). */
export async function sampleConnectivity(pc: StatsSource, gathered: Iterable<CandidateType>): Promise<LinkConnectivity | null> {
  try {
    const report = await pc.getStats()
    return connectivityFromStats(report.values() as Iterable<Stat>, gathered)
  } catch {
    return null
  }
}
