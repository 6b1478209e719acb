import { linkTopology } from '../shared/algorithms/descriptors'
import type { RoomConfig } from '../shared/config'
import { log2Ceil, neighbors } from '../shared/topology'

/**
 * What the server believes about a peer, and on whose word (docs/security.md "Evictions",
 * "Roles"). Pure functions of the room's state, so rooms.ts stays the only owner of that state
 * and each rule is testable on its own.
 */

/** A suspicion not confirmed within this long expires; if its target kept reporting, the reporter earns a strike. */
export const SUSPICION_TTL_MS = 60_000
/** Strikes (suspicions that did not hold up) within STRIKE_MEMORY_MS that cost a reporter its vote. */
export const STRIKES_TO_MUTE = 3
export const STRIKE_MEMORY_MS = 10 * 60_000
/** How long a reporter whose reports did not hold up is not counted. */
export const VOTE_MUTE_MS = 5 * 60_000
/**
 * The server's own observation: peers report every 500 ms (client/session/swarm-session.ts), so
 * a roster peer silent this long is not training, whatever its neighbours say.
 */
export const SILENT_AFTER_MS = 10_000
/** Before this long in the roster, a peer is a candidate for a role only when nobody else is. */
export const ROLE_MIN_TENURE_MS = 30_000

/**
 * The peers whose word counts about `suspect`: its neighbours on the graph the mesh really
 * connects (linkTopology: the all-reduce ring unless robust, the room's graph otherwise), in both directions
 * and over every step of a time-varying graph. Pending peers, spectators and peers that never
 * exchange with the suspect are not in it.
 */
export function evidencePeers(
  config: Pick<RoomConfig, 'algorithm' | 'topology'> & Partial<Pick<RoomConfig, 'robust'>>, roster: readonly string[], ps: string | null, suspect: string,
): string[] {
  const topology = linkTopology(config)
  const steps = topology === 'one-peer-exponential' ? Math.max(1, log2Ceil(roster.length)) : 1
  const out = new Set<string>()
  for (let step = 0; step < steps; step++) {
    const n = neighbors(topology, roster, suspect, step, ps)
    for (const p of n.sendTo) out.add(p)
    for (const p of n.receiveFrom) out.add(p)
  }
  out.delete(suspect)
  return [...out]
}

export type EvictionBasis = 'neighbours' | 'server'

/**
 * Whether the evidence suffices: a majority of the suspect's neighbours and at least two of
 * them where it has two or more; otherwise (one neighbour, or too few votes because a
 * neighbour is gone too) only together with the server's own observation that the suspect went
 * silent. One neighbour's word alone never evicts.
 */
export function evictionBasis(neighbours: number, votes: number, silentForMs: number | null): EvictionBasis | null {
  if (neighbours >= 2 && votes >= 2 && votes * 2 > neighbours) return 'neighbours'
  if (votes >= 1 && silentForMs !== null && silentForMs >= SILENT_AFTER_MS) return 'server'
  return null
}

/** A reporter's record of suspicions that did not hold up. */
export interface Strikes {
  count: number
  lastAt: number
  mutedUntil: number
}

/** Adds a strike; the third within STRIKE_MEMORY_MS mutes the reporter for VOTE_MUTE_MS. */
export function addStrike(prev: Strikes | undefined, now: number): Strikes {
  const count = prev && now - prev.lastAt < STRIKE_MEMORY_MS ? prev.count + 1 : 1
  return { count, lastAt: now, mutedUntil: count >= STRIKES_TO_MUTE ? now + VOTE_MUTE_MS : prev?.mutedUntil ?? 0 }
}

export interface RoleCandidate {
  id: string
  /** When it (last) entered the roster. */
  readyAt: number
  /** Steps it has reported in this run. */
  steps: number
  /** Currently reported by a neighbour, or muted for false reports. */
  distrusted: boolean
}

/**
 * Who holds a role: the host's pin when that peer is in the roster; else the current holder
 * while it stays in the roster and trusted (roles do not move on every join); else the
 * candidate with tenure (ROLE_MIN_TENURE_MS in the roster), steps contributed and no
 * suspicion, longest-serving first; else the longest-serving trusted peer; else roster order.
 * A peer that joins later can only take a role when every longer-serving peer is gone or
 * distrusted, so evicting its way up takes the neighbours' evidence above.
 */
export function chooseRole(
  current: string | null, pinned: string | null, candidates: readonly RoleCandidate[], now: number,
): string | null {
  const byId = new Map(candidates.map((c) => [c.id, c]))
  if (pinned && byId.has(pinned)) return pinned
  const cur = current ? byId.get(current) : undefined
  if (cur && !cur.distrusted) return cur.id
  const trusted = candidates.filter((c) => !c.distrusted).sort((a, b) => a.readyAt - b.readyAt)
  const earned = trusted.find((c) => now - c.readyAt >= ROLE_MIN_TENURE_MS && c.steps > 0)
  return earned?.id ?? trusted[0]?.id ?? candidates[0]?.id ?? null
}

/**
 * A checkpoint's parameters are judged against the previous one of the run: an honest model
 * moves slowly between two checkpoints (seconds apart), so an L2 norm more than this factor
 * above or below the previous one is refused. The first checkpoint of a run has no reference;
 * it must have an RMS value below CHECKPOINT_MAX_RMS (trained weights of these models are O(1)).
 */
export const CHECKPOINT_NORM_FACTOR = 4
export const CHECKPOINT_MAX_RMS = 100

export function l2Norm(values: Float32Array): number {
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i] * values[i]
  return Math.sqrt(s)
}

/** null when plausible, else why not (a 'params: …' message). */
export function implausibleParams(norm: number, count: number, previousNorm: number | null): string | null {
  const rms = norm / Math.sqrt(Math.max(1, count))
  if (!(rms <= CHECKPOINT_MAX_RMS)) return `params: RMS value ${rms.toPrecision(3)} is above ${CHECKPOINT_MAX_RMS}; this is not a trained model`
  if (previousNorm === null) return null
  // An absolute floor so a near-zero reference (a fresh bias-only model) does not forbid all change.
  const floor = 1e-3 * Math.sqrt(count)
  const hi = CHECKPOINT_NORM_FACTOR * previousNorm + floor
  const lo = previousNorm / CHECKPOINT_NORM_FACTOR - floor
  if (norm > hi || norm < lo)
    return `params: norm ${norm.toPrecision(4)} is too far from the previous checkpoint's ${previousNorm.toPrecision(4)} (at most ${CHECKPOINT_NORM_FACTOR}× either way)`
  return null
}
