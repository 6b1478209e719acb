import type { LinkProfileName } from '../../shared/link-conditions'
import type { Compute, HogwildPool } from '../../shared/algorithms/types'
import type { RoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import type { AwayReason, BackendName, CapabilityIssue, Credit, MembershipAnnouncement, PeerCommand, PeerReport } from '../../shared/protocol/signaling'
import type { Membership, Mesh, Unsubscribe } from '../../shared/transport'
import type { ConnectivitySummary } from '../mesh/connectivity'

/** Lifecycle of a volunteer tab, rendered by the UI (hivemind AveragingStage style closed union). */
export type SessionStage = 'idle' | 'loading' | 'connecting' | 'training' | 'paused' | 'stalled' | 'done' | 'error' | 'diverged'

/** Everything the volunteer UI shows; emitted by client/session/swarm-session.ts. */
export interface SessionSnapshot {
  stage: SessionStage
  room: string
  self: string | null
  /** The display name this tab joined with (shown to the room); null when it gave none. */
  name: string | null
  config: RoomConfig | null
  run: number
  backend: BackendName | null
  /** Why this backend was chosen (measured steps/s per candidate, or forced by ?backend=). */
  backendReason: string
  /** Where the model runs once the trainer is built: a worker thread or this (page/session) thread. */
  computeThread: 'worker' | 'main' | null
  /** What this tab lacks (WebGPU, isolation) and why, from the platform's diagnosis; [] for Node peers. */
  capability: CapabilityIssue[]
  /** 0..1 while the dataset shard downloads. */
  dataProgress: number
  step: number
  globalStep: number
  loss: number | null
  accuracy: number | null
  samplesPerSec: number
  stepsPerSec: number
  /** Samples this tab has processed in its current stretch of training (restarts after a pause or reload). */
  samples: number
  /**
   * What the room credits this volunteer with in the run, kept across its reloads and pauses
   * (the server's 'credit' event): samples, place among the run's contributors, share. Null
   * until the server says (older servers never do).
   */
  credit: { samples: number; rank: number; of: number; share: number; total: number } | null
  /** Display names of this tab's neighbours, by peer id (from the server; absent: no name given). */
  neighbourNames: Record<string, string>
  /** The screen is kept on while this tab trains (Screen Wake Lock; browser tabs only). */
  screenOn: boolean
  /**
   * Wall-clock ms spent measuring test accuracy so far (training waits meanwhile; the session
   * keeps it under EVAL_TIME_BUDGET of the time): benchmarks separate it from the swarm's cost.
   */
  evalMs: number
  bytesSent: number
  bytesReceived: number
  neighbors: string[]
  /** How this tab's WebRTC links connect (direct / relayed, median RTT); null before any is sampled. */
  connectivity: ConnectivitySummary | null
  peers: string[]
  lr: number | null
  h: number | null
  consensus: number | null
  error: string | null
  /** Recent events in plain words, newest last ("averaged with 2 peers", "neighbour x timed out"). */
  log: LogLine[]
  /** Out of the roster for a while: the user paused this tab, or it has been hidden. */
  away: AwayReason | null
  /**
   * The run diverged: this tab's own model (stage 'diverged', it stopped training and waits for a
   * new run), or the room said so (the room paused itself). `hint` is what to change.
   */
  diverged: { step: number; loss: number | null; reason: string; hint: string } | null
  /** Host fault injection in effect on this tab (1 and 0 when none). */
  faults: { slowFactor: number; latencyMs: number }
}

/** One activity-log line: plain words for people, and the technical detail for whoever asks. */
export interface LogLine {
  /** Wall-clock time, HH:MM:SS. */
  at: string
  text: string
  /** The same event in technical terms (ids, rounds, reasons); shown on demand. */
  detail?: string
}

export interface SessionHandle {
  snapshot(): SessionSnapshot
  subscribe(cb: (s: SessionSnapshot) => void): Unsubscribe
  pause(): void
  resume(): void
  /** The page was hidden for a while (true) or is visible again (false). */
  setHidden(hidden: boolean): void
  leave(): Promise<void>
}

// ---- ports: what the session needs from its platform (browser tab or Node process) ----

export interface Trainer {
  compute: Compute
  /** This peer's training shard on the host (LAP-SGD workers load their own copy of it). */
  train: Dataset
  /** Loss and accuracy of `params` on the held-out test subset. */
  evaluate(params: Float32Array): Promise<{ loss: number; accuracy: number }>
  dispose(): void
  /** Where `compute` runs (default 'main'), and why when it is not where the platform prefers. */
  computeThread?: 'worker' | 'main'
  computeNote?: string
}

export interface SessionMesh extends Mesh {
  updateMembership(m: Membership): void
  /** Fault injection: delay every outgoing message by `ms`. */
  setLatency(ms: number): void
  close(): void
}

export interface SignalingPort {
  join(req: { room: string; name?: string; agent: 'browser' | 'node' }): Promise<{ self: string; membership: MembershipAnnouncement }>
  /** This joined volunteer has its data and model: put it in the roster (see readySchema). */
  ready(): void
  /** The server's word on this volunteer's credit in the run (creditSchema); optional: Node tests' ports omit it. */
  onCredit?(cb: (c: Credit) => void): Unsubscribe
  onMembership(cb: (m: MembershipAnnouncement) => void): Unsubscribe
  onCommand(cb: (c: PeerCommand) => void): Unsubscribe
  /** The server removed us: 'evicted' (neighbours reported us unresponsive) or 'kicked' (by the host). */
  onRemoved(cb: (why: 'evicted' | 'kicked') => void): Unsubscribe
  /** The socket reconnected after a drop (e.g. server restart): our old peer id is gone. */
  onReconnect(cb: () => void): Unsubscribe
  /**
   * Steps out of the roster for a while (awaySchema: user pause, hidden tab) without leaving the
   * room; ready() brings us back.
   */
  away(reason: AwayReason): void
  /**
   * Drops the connection to the server as a network blip would; the port reconnects by itself
   * and onReconnect fires (the host's "disconnect" fault). Like any reconnect it gives a new peer
   * id: neighbours must not take the returning tab's messages for duplicates of its old ones.
   */
  dropConnection?(): void
  report(r: PeerReport): void
  checkpoint(c: { step: number; schemaHash: string; params: Uint8Array }): void
  close(): void
}

export interface SessionPlatform {
  readonly agent: 'browser' | 'node'
  /** Base URL of the server (for /api and /data). */
  readonly serverUrl: string
  /** This peer's own link profile, overriding the room's (npm run peer -- --link); absent: the room's. */
  readonly link?: LinkProfileName
  signaling: SignalingPort
  selectBackend(forced?: BackendName): Promise<{ backend: BackendName; reason: string; capability?: CapabilityIssue[] }>
  prepare(
    config: RoomConfig,
    shard: { index: number; count: number; seed: number },
    onProgress: (fraction: number) => void,
  ): Promise<Trainer>
  createMesh(args: { self: string; membership: Membership; config: RoomConfig; compute: Compute }): SessionMesh
  createHogwild?(config: RoomConfig, trainer: Trainer, shard: { index: number; count: number; seed: number }): Promise<HogwildPool>
  /** Latest room checkpoint, if the server has one (resume after a restart). */
  fetchCheckpoint?(room: string): Promise<{ step: number; schemaHash: string; params: Float32Array } | null>
  /**
   * The room's checkpoint step and each roster peer's reported progress: a tab resumes from the
   * checkpoint when nobody in the roster is past it (see shouldResume). Without it a tab resumes
   * only when it is alone in the roster.
   */
  fetchRoomProgress?(room: string): Promise<RoomProgress>
}

export interface RoomProgress {
  checkpointStep: number | null
  peers: { id: string; globalStep: number }[]
}

export interface SessionOptions {
  room: string
  name?: string
  backend?: BackendName
  /** Stop after this many local steps (Node volunteers in benchmarks); default: run until stopped. */
  maxSteps?: number
}
