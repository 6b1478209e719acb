import type { ModelName } from '../../../shared/config'
import type { Dataset } from '../../../shared/data/format'

/**
 * Messages between a HogwildPool and its updater workers (Web Workers or worker_threads).
 * Parameters never travel in messages: they live in a SharedArrayBuffer both sides map.
 */
export const CTRL_UPDATES = 0 // total updates made (Atomics.add by workers)
export const CTRL_REMAINING = 1 // updates still to make in the current run (Atomics.sub)
export const CTRL_ABORT = 2 // non-zero: stop after the current update
export const CTRL_SLOTS = 4

export interface InitMessage {
  type: 'init'
  params: SharedArrayBuffer
  control: SharedArrayBuffer
  model: ModelName
  train: Dataset
  batchSize: number
  seed: number
  /** Distinct per worker so updaters draw different minibatches. */
  streamSeed: number
  backend: 'cpu' | 'wasm'
  wasmPath?: string
}
export interface RunMessage {
  type: 'run'
  runId: number
  lr: number
}
export interface CloseMessage {
  type: 'close'
}
export type ToWorker = InitMessage | RunMessage | CloseMessage

export type FromWorker =
  | { type: 'ready'; backend: string }
  | { type: 'done'; runId: number; lossSum: number; updates: number }
  | { type: 'error'; message: string }
