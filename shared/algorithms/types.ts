import type { AlgorithmName, RoomConfig } from '../config'
import type { Mesh } from '../transport'

/**
 * Local compute seen by algorithms. Implemented with tfjs in client/runtime/tf-compute.ts
 * (browser and Node) and in pure JS by shared/testing/lsq-compute.ts (least squares, for exact
 * math tests). Algorithms never import tfjs: parameters cross this seam as flat Float32Arrays,
 * and only when the algorithm needs them on the host (local steps stay on the device).
 */
export interface Compute {
  /** Total number of trainable parameters (d). */
  readonly paramCount: number
  /** Hash of the parameter layout (shapes and order); peers with another hash are rejected. */
  readonly schemaHash: string
  /** Copies the device parameters to the host. */
  readParams(): Promise<Float32Array>
  /** Overwrites the device parameters. Rejects (and changes nothing) on wrong length or non-finite values. */
  writeParams(p: Float32Array): Promise<void>
  /**
   * Gradient of the loss on the next local minibatch at the current device parameters (no
   * weight decay: algorithms add it). Returns a host copy.
   */
  gradient(): Promise<GradientResult>
  /** One optimizer step entirely on the device (no host round trip of the parameters). */
  localStep(opts: LocalStepOptions): Promise<LocalStepResult>
  /** Optimizer state used by localStep (momentum, or Adam m and v), flattened; [] if none yet. */
  readOptimizerState(): Promise<Float32Array[]>
  writeOptimizerState(state: Float32Array[]): Promise<void>
  resetOptimizer(): void
  /** Samples in one minibatch of this peer. */
  readonly batchSize: number
}

export interface GradientResult {
  grad: Float32Array
  loss: number
  samples: number
}

export interface LocalStepResult {
  /** Minibatch loss; may be NaN when the implementation skips the read-back for speed. */
  loss: number
  samples: number
}

export type LocalStepOptions =
  | { optimizer: 'sgd'; lr: number; momentum: number; weightDecay: number }
  | { optimizer: 'adamw'; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** Everything an algorithm instance gets from the session. */
export interface AlgorithmContext {
  readonly mesh: Mesh
  readonly compute: Compute
  readonly config: RoomConfig
  /** Cancels every wait of this instance (session stop / leave). */
  readonly signal: AbortSignal
  /** Structured log line for diagnostics (shown in the UI log, printed by the simulator with --verbose). */
  log(event: string, detail?: Record<string, unknown>): void
  /** Monotonic milliseconds. Injected so deterministic tests can use virtual time. */
  now(): number
  /** LAP-SGD only: runs U Hogwild updaters over shared memory (Web Workers / worker_threads / in-process). */
  readonly hogwild?: HogwildPool
}

/** What one call to `step()` did; the session reports it and the simulator records it. */
export interface StepReport {
  /** Local step counter after this step. */
  step: number
  /** Global progress counter (max-merged swarm steps) used for the lr schedule. */
  globalStep: number
  loss: number
  samples: number
  lr: number
  /** Local steps per round for local-sgd family (QSR's H); undefined otherwise. */
  h?: number
  /** True when this step exchanged parameters/gradients with other peers. */
  communicated: boolean
  /** Peers whose contribution arrived in time this step. */
  contributors?: number
  /** Peers whose weight was folded onto self this step (missed deadline). */
  folded?: number
  /** Consensus-distance proxy: mean ||x - x_j||² over received neighbour models (docs/algorithms.md "Consensus distance"). */
  consensus?: number
}

export interface AlgorithmInstance {
  readonly name: AlgorithmName
  /** One training step including any communication it needs; never waits past a named deadline. */
  step(): Promise<StepReport>
  /** The model to evaluate for accuracy: the local model (or the latest global copy for PS methods). */
  evalParams(): Promise<Float32Array>
  /** Graceful leave (docs/algorithms.md "Graceful leave"): hand the model / server state to others once. Best effort, bounded. */
  leave(): Promise<void>
  /** Stops background loops (request servers, PS role). Idempotent. */
  dispose(): void
}

/**
 * Creates an instance and bootstraps it (docs/algorithms.md "Joining a running swarm"): fetches state from peers when joining a running
 * swarm. Resolves when the instance is ready for its first `step()`.
 */
export type AlgorithmFactory = (ctx: AlgorithmContext) => Promise<AlgorithmInstance>

/** Intra-tab Hogwild updaters for LAP-SGD (docs/algorithms.md "LAP-SGD"). */
export interface HogwildPool {
  /** Number of concurrent updaters (U); may change at run time. */
  updaters: number
  /** Runs updates until `totalUpdates` more local updates have been made across all updaters. Returns mean loss. */
  run(totalUpdates: number, lr: number, signal: AbortSignal): Promise<{ loss: number; samples: number }>
  /** Non-atomic snapshot of the shared parameters. */
  snapshot(): Float32Array
  /** In place: x += delta (element-wise), racing with updaters by design. */
  addInPlace(delta: Float32Array): void
  /** Replaces the shared parameters (bootstrap). */
  overwrite(x: Float32Array): void
  /** Total local updates made so far (Atomics counter). */
  readonly updates: number
}
