/// <reference lib="webworker" />
// Browser entry of a Hogwild updater (spawned with `new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' })`).
import '@tensorflow/tfjs-backend-wasm'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import type { FromWorker, ToWorker } from './protocol'
import { runHogwildWorker, setWorkerBackend } from './worker-core'

const scope = self as unknown as { postMessage(m: FromWorker): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null }
const handle = runHogwildWorker(
  (m) => scope.postMessage(m),
  async (init) => {
    if (init.backend === 'wasm') setWasmPaths(init.wasmPath ?? '/tfjs-wasm/')
    return setWorkerBackend(init.backend)
  },
)
scope.onmessage = (e) => handle(e.data)
