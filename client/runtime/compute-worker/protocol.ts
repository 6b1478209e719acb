import type { LocalStepOptions } from '../../../shared/algorithms/types'
import type { ModelName } from '../../../shared/config'
import type { Dataset } from '../../../shared/data/format'

/**
 * Messages between a WorkerCompute (the session's thread) and the thread that owns the tfjs
 * model. Both ends are our own code in one process, so these are plain structured-clone
 * objects, not zod schemas: nothing here crosses a socket or a data channel. Every request
 * carries an id; the worker answers each one, in order, exactly once.
 */
export interface ComputeInit {
  model: ModelName
  train: Dataset
  /** Held-out examples for evaluate(). */
  test: Dataset
  batchSize: number
  seed: number
  streamSeed: number
  backend: 'wasm' | 'cpu'
  wasmPath?: string
}

export type ComputeRequest =
  | { id: number; op: 'init'; init: ComputeInit }
  | { id: number; op: 'readParams' }
  | { id: number; op: 'writeParams'; params: Float32Array }
  | { id: number; op: 'gradient' }
  | { id: number; op: 'localStep'; opts: LocalStepOptions }
  | { id: number; op: 'readOptimizerState' }
  | { id: number; op: 'writeOptimizerState'; state: Float32Array[] }
  | { id: number; op: 'resetOptimizer' }
  | { id: number; op: 'evaluate'; params: Float32Array }
  | { id: number; op: 'dispose' }

export interface InitReply {
  backend: string
  paramCount: number
  schemaHash: string
  batchSize: number
}

export type ComputeReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string }
