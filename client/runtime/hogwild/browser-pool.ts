import type { FromWorker } from './protocol'
import { WorkerHogwildPool, type HogwildPoolOptions, type WorkerHandle } from './pool'

/** True when SharedArrayBuffer can be shared with workers (COOP/COEP headers present). */
export function hogwildSupported(): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true
}

/** Hogwild pool over module Web Workers (each runs its own tfjs, wasm by default). */
export function createBrowserHogwildPool(opts: HogwildPoolOptions): WorkerHogwildPool {
  if (!hogwildSupported()) throw new Error('LAP-SGD needs cross-origin isolation (COOP/COEP) for SharedArrayBuffer')
  const spawn = (): WorkerHandle => {
    const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' })
    return {
      post: (m) => w.postMessage(m),
      onMessage: (fn) => w.addEventListener('message', (e: MessageEvent<FromWorker>) => fn(e.data)),
      onError: (fn) => w.addEventListener('error', (e) => fn(new Error(e.message || 'worker error'))),
      terminate: () => w.terminate(),
    }
  }
  return new WorkerHogwildPool({ backend: 'wasm', wasmPath: '/tfjs-wasm/', ...opts }, spawn)
}
