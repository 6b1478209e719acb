import { WorkerCompute, type ComputePort } from './host'
import type { ComputeInit, ComputeReply } from './protocol'

/** Module Web Workers exist here (not in old browsers, not in Node). */
export function browserComputeWorkerSupported(): boolean {
  return typeof Worker !== 'undefined'
}

/**
 * A WorkerCompute on a module Web Worker running tfjs wasm (or cpu). Why a tab wants it: on these
 * backends a gradient holds its thread for the whole pass, and in a tab that thread also owns the
 * data channels, the socket and the page. With the model here the tab keeps answering its
 * neighbours (a parameter server's pushes, an AD-PSGD partner) and repainting during a step.
 */
export function startBrowserWorkerCompute(init: Omit<ComputeInit, 'backend'> & { backend: 'wasm' | 'cpu' }, signal?: AbortSignal): Promise<WorkerCompute> {
  const w = new Worker(new URL('./worker-browser.ts', import.meta.url), { type: 'module', name: 'tabswarm-compute' })
  const port: ComputePort = {
    post: (m, transfer) => w.postMessage(m, transfer ?? []),
    onMessage: (fn) => w.addEventListener('message', (e: MessageEvent<ComputeReply>) => fn(e.data)),
    onError: (fn) => {
      // A script that fails to load or throws at top level; messageerror: a reply that could not
      // be deserialised. Both end the worker for us: every pending call rejects with the reason.
      w.addEventListener('error', (e) => fn(new Error(e.message || 'compute worker failed to start')))
      w.addEventListener('messageerror', () => fn(new Error('compute worker sent a message that could not be read')))
    },
    terminate: () => w.terminate(),
  }
  return WorkerCompute.start(port, { wasmPath: '/tfjs-wasm/', ...init }, signal)
}
