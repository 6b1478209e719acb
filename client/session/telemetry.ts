import type { LinkProfileName } from '../../shared/link-conditions'
import { ALGORITHM_DESCRIPTORS } from '../../shared/algorithms/descriptors'
import type { Divergence } from '../../shared/divergence'
import type { PeerReport } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import type { MeshStats } from '../../shared/transport'
import { summarizeConnectivity, type ConnectivitySummary } from '../mesh/connectivity'
import type { SessionSnapshot } from './types'

/**
 * What a session measures and tells the room: step and sample rates over a sliding window, and
 * the wire report built from a snapshot. Pure, so the session loop only decides when.
 */

/** Rates are averaged over this much wall-clock time. */
export const RATE_WINDOW_MS = 5000

export class RateWindow {
  private points: { t: number; step: number; samples: number }[] = []

  reset(): void {
    this.points = []
  }

  /** Adds a point and returns the rates over the window (0 until two points span some time). */
  push(t: number, step: number, samples: number): { stepsPerSec: number; samplesPerSec: number } {
    this.points.push({ t, step, samples })
    while (this.points.length > 2 && this.points[0].t < t - RATE_WINDOW_MS) this.points.shift()
    const first = this.points[0]
    const last = this.points[this.points.length - 1]
    const span = (last.t - first.t) / 1000
    return span > 0
      ? { stepsPerSec: (last.step - first.step) / span, samplesPerSec: (last.samples - first.samples) / span }
      : { stepsPerSec: 0, samplesPerSec: 0 }
  }
}

/** How this peer's open links connect (direct / relayed, median RTT); null when none has been sampled (not a WebRTC mesh). */
export function linkConnectivity(stats: MeshStats | undefined): ConnectivitySummary | null {
  const ice = Object.values(stats?.perLink ?? {}).map((l) => l.ice).filter((c) => c !== undefined)
  return ice.length ? summarizeConnectivity(ice) : null
}

/**
 * The report for the room. `divergence` is this tab's own verdict: the stage 'diverged' goes out
 * only with it, and a tab the room paused for the others' divergence reports 'paused'.
 */
export function buildReport(
  s: SessionSnapshot, stats: MeshStats | undefined,
  extra: { slowFactor: number; latencyMs: number; divergence: Divergence | null; link?: LinkProfileName },
): PeerReport {
  const links: PeerReport['links'] = {}
  for (const [peer, l] of Object.entries(stats?.perLink ?? {})) links[peer] = { sent: l.bytesSent, received: l.bytesReceived, ...(l.ice ? { ice: l.ice } : {}) }
  const rejected = Object.values(stats?.rejected ?? {}).reduce((a, b) => a + b, 0)
  const d = extra.divergence
  const stage = s.stage === 'idle' ? 'loading' : s.stage === 'diverged' && !d ? 'paused' : s.stage
  return {
    v: PROTOCOL_VERSION, step: s.step, globalStep: s.globalStep, loss: s.loss, accuracy: s.accuracy,
    backend: s.backend ?? 'cpu', backendReason: s.backendReason.slice(0, 200), computeThread: s.computeThread ?? undefined,
    samplesPerSec: s.samplesPerSec, stepsPerSec: s.stepsPerSec, samples: s.samples, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived,
    neighbors: s.neighbors, links, lr: s.lr, h: s.h, consensus: s.consensus, stage, rejected,
    slowFactor: extra.slowFactor, addedLatencyMs: extra.latencyMs,
    ...(extra.link && extra.link !== 'lan' ? { link: extra.link } : {}),
    // Without isolation there is no shared memory: lap-sgd runs its one in-tab updater (shared/algorithms/lap-sgd.ts).
    updaters: s.config && ALGORITHM_DESCRIPTORS[s.config.algorithm].hogwild ? (s.capability.includes('not-isolated') ? 1 : s.config.updaters) : undefined,
    capability: s.capability.length > 0 ? s.capability : undefined,
    ...(d && stage === 'diverged'
      ? { diverged: { step: Math.max(0, Math.floor(d.step)), loss: Number.isFinite(d.loss) ? d.loss : null, reason: d.reason.slice(0, 200) } }
      : {}),
  }
}
