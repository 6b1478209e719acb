import type { Worker } from 'node:worker_threads'
import { spawnTsWorker } from '../node-worker'
import { WorkerCompute, type ComputePort } from './host'
import type { ComputeInit, ComputeReply } from './protocol'

export function nodeComputePort(w: Worker): ComputePort {
  return {
    post: (m, transfer) => w.postMessage(m, transfer ?? []),
    onMessage: (fn) => w.on('message', (m: ComputeReply) => fn(m)),
    onError: (fn) => {
      w.on('error', fn)
      w.on('exit', (code) => fn(new Error(`compute thread exited with code ${code}`)))
    },
    terminate: () => void w.terminate(),
    keepAlive: (on) => (on ? w.ref() : w.unref()),
  }
}

/** A WorkerCompute on a worker_threads thread running tfjs (wasm, or cpu as fallback). */
export function startNodeWorkerCompute(init: Omit<ComputeInit, 'backend'> & { backend?: 'wasm' | 'cpu' }, signal?: AbortSignal): Promise<WorkerCompute> {
  const w = spawnTsWorker(new URL('./worker-node.ts', import.meta.url))
  return WorkerCompute.start(nodeComputePort(w), { backend: 'wasm', ...init }, signal)
}
