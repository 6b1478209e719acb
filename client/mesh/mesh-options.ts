import type { RoomConfig } from '../../shared/config'
import type { IceServersGrant, MembershipAnnouncement } from '../../shared/protocol/signaling'
import type { Membership, PeerId, Unsubscribe } from '../../shared/transport'
import type { WrtcImpl } from './data-channel'

/** The part of SignalingClient the mesh uses (structural, so tests can pass their own). */
export interface MeshSignalingPort {
  on(name: 'signal', cb: (p: { from: PeerId; data: Record<string, unknown> }) => void): Unsubscribe
  on(name: 'membership', cb: (p: MembershipAnnouncement) => void): Unsubscribe
  signal(to: PeerId, data: Record<string, unknown>): void
  suspect(peer: PeerId, reason: string): void
  readonly membership: MembershipAnnouncement | null
  /** The server's STUN/TURN grant for this peer, if it sends one (SignalingClient does). */
  readonly iceGrant?: IceServersGrant | null
  /** Asks the server for a fresh grant (its TURN credentials expired without a renewal reaching us). */
  requestIceServers?(): void
}

/** The room settings the mesh reads; options override what the server announces. */
export type MeshRoomConfig = Pick<RoomConfig, 'iceServers' | 'iceTransportPolicy' | 'maxMessageBytes' | 'compression' | 'link'>

export interface WebRtcMeshOptions {
  self: PeerId
  signaling: MeshSignalingPort
  /** Overrides of the room config announced by the server (tests pass `iceServers: []`). */
  config?: Partial<MeshRoomConfig>
  /** Model-schema hash; messages carrying another one are rejected on their first frame. */
  schemaHash?: string
  /** Node: the WebRTC implementation (e.g. `import wrtc from '@roamhq/wrtc'`). Browser: omit. */
  wrtc?: WrtcImpl
  /** Deadline for a link to connect before send() rejects with PeerUnavailableError. */
  connectTimeoutMs?: number
  /** Links kept open beyond the wanted ones (LRU). */
  warmLinks?: number
  /** Pause sending above this many bytes queued on the data channel… */
  highWaterMark?: number
  /** …and resume when it drains below this. */
  lowWaterMark?: number
  /** Report a peer as suspect after this many rejected messages (and every multiple). */
  suspectAfterRejects?: number
  /** Topology neighbours for a membership (pure function from shared/topology). */
  neighbours?: (m: Membership, self: PeerId) => readonly PeerId[]
  /** Expected element count per kind (e.g. paramCount for parameter messages). */
  expectedLength?: (kind: string) => number | undefined
  /**
   * Which kinds carry increments (gradients, partial sums of gradients): their lossy (fp16/int8)
   * encoding keeps the rounding error per (peer, kind) and adds it to the next message of that
   * kind (error feedback), so what the receiver accumulates stays unbiased. Parameter vectors
   * are not increments and are sent as they are.
   */
  errorFeedback?: (kind: string) => boolean
  log?: (event: string, detail?: Record<string, unknown>) => void
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000
export const DEFAULT_WARM_LINKS = 8
export const DEFAULT_HIGH_WATER = 1024 * 1024
export const DEFAULT_LOW_WATER = 256 * 1024
export const DEFAULT_SUSPECT_AFTER_REJECTS = 3

/** Used where neither the options nor the server's announcement say. */
export const FALLBACK_ROOM_CONFIG: MeshRoomConfig = {
  iceServers: [],
  iceTransportPolicy: 'all',
  maxMessageBytes: 64 * 1024 * 1024,
  compression: 'fp32',
  link: 'lan',
}

export type ResolvedMeshOptions = WebRtcMeshOptions &
  Required<Pick<WebRtcMeshOptions, 'connectTimeoutMs' | 'warmLinks' | 'highWaterMark' | 'lowWaterMark' | 'suspectAfterRejects'>>

export function withDefaults(opts: WebRtcMeshOptions): ResolvedMeshOptions {
  return {
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    warmLinks: DEFAULT_WARM_LINKS,
    highWaterMark: DEFAULT_HIGH_WATER,
    lowWaterMark: DEFAULT_LOW_WATER,
    suspectAfterRejects: DEFAULT_SUSPECT_AFTER_REJECTS,
    ...opts,
  }
}
