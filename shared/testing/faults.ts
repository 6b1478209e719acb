import type { PeerId } from '../transport'

/**
 * Fault settings of the in-memory network. All randomness comes from the network's seed, so a
 * run with the same seed and the same schedule of calls sees the same faults.
 */
export interface FaultConfig {
  /** Per-message one-way latency in ms, uniform in [min, max]. 0/0 delivers on the microtask queue. */
  latencyMs: readonly [number, number]
  /** Probability that a message is silently lost. */
  dropRate: number
  /** Probability that a message gets extra random delay (up to `reorderMs`), overtaking later ones. */
  reorderRate: number
  reorderMs: number
  /** Latency multiplier per sending peer (a slow tab / slow uplink). */
  slowPeers: Readonly<Record<PeerId, number>>
  /** Peers whose outgoing messages are all lost (alive in the roster but silent). */
  silent: readonly PeerId[]
}

export const NO_FAULTS: FaultConfig = {
  latencyMs: [0, 0], dropRate: 0, reorderRate: 0, reorderMs: 0, slowPeers: {}, silent: [],
}

/** Named catalogue used by tests and the simulator (`--faults NAME`). */
export const FAULTS = {
  none: NO_FAULTS,
  lan: { ...NO_FAULTS, latencyMs: [1, 3] },
  wan: { ...NO_FAULTS, latencyMs: [20, 60] },
  lossy: { ...NO_FAULTS, latencyMs: [1, 5], dropRate: 0.05 },
  reorder: { ...NO_FAULTS, latencyMs: [1, 3], reorderRate: 0.3, reorderMs: 10 },
} satisfies Record<string, FaultConfig>

export type FaultName = keyof typeof FAULTS

/** One peer sends `factor`× slower than the rest. */
export function slowPeer(base: FaultConfig, peer: PeerId, factor: number): FaultConfig {
  return { ...base, slowPeers: { ...base.slowPeers, [peer]: factor } }
}

/** One peer is alive in the roster but none of its messages arrive (a hung tab). */
export function silentPeer(base: FaultConfig, peer: PeerId): FaultConfig {
  return { ...base, silent: [...base.silent, peer] }
}
