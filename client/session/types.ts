import type { AwayReason, BackendName } from '../../shared/protocol/signaling'
import type { RoomConfig } from '../../shared/config'
import type { Unsubscribe } from '../../shared/transport'

/** Lifecycle of a volunteer tab, rendered by the UI (hivemind AveragingStage style closed union). */
export type SessionStage = 'idle' | 'loading' | 'connecting' | 'training' | 'paused' | 'stalled' | 'done' | 'error' | 'diverged'

/** Everything the volunteer UI shows; emitted by client/session/swarm-session.ts. */
export interface SessionSnapshot {
  stage: SessionStage
  room: string
  self: string | null
  config: RoomConfig | null
  run: number
  backend: BackendName | null
  /** Why this backend was chosen (measured steps/s per candidate, or forced by ?backend=). */
  backendReason: string
  /** Where the model runs once the trainer is built: a worker thread or this (page/session) thread. */
  computeThread: 'worker' | 'main' | null
  /** 0..1 while the dataset shard downloads. */
  dataProgress: number
  step: number
  globalStep: number
  loss: number | null
  accuracy: number | null
  samplesPerSec: number
  stepsPerSec: number
  /** Samples this tab has processed: its contribution. */
  samples: number
  /**
   * Wall-clock ms spent measuring test accuracy so far (training waits meanwhile; the session
   * keeps it under EVAL_TIME_BUDGET of the time): benchmarks separate it from the swarm's cost.
   */
  evalMs: number
  bytesSent: number
  bytesReceived: number
  neighbors: string[]
  peers: string[]
  lr: number | null
  h: number | null
  consensus: number | null
  error: string | null
  /** Recent human-readable events, newest last ("averaged with 2 peers", "neighbour x timed out"). */
  log: string[]
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

export interface SessionHandle {
  snapshot(): SessionSnapshot
  subscribe(cb: (s: SessionSnapshot) => void): Unsubscribe
  pause(): void
  resume(): void
  /** The page was hidden for a while (true) or is visible again (false). */
  setHidden(hidden: boolean): void
  leave(): Promise<void>
}
