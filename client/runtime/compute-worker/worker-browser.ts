/// <reference lib="webworker" />
// Browser entry of the compute thread (a module Web Worker). Started by browser.ts.
import '@tensorflow/tfjs-backend-wasm'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import { setWorkerBackend } from '../hogwild/worker-core'
import type { ComputeReply, ComputeRequest } from './protocol'
import { runComputeWorker } from './worker-core'

const scope = self as unknown as {
  postMessage(m: ComputeReply, transfer?: Transferable[]): void
  onmessage: ((e: MessageEvent<ComputeRequest>) => void) | null
}
const handle = runComputeWorker(
  (m, transfer) => scope.postMessage(m, transfer ?? []),
  async (name, wasmPath) => {
    // The wasm binaries are served from public/ (tools/copy-wasm.mjs), like the main thread's.
    if (name === 'wasm') setWasmPaths(wasmPath ?? '/tfjs-wasm/')
    return setWorkerBackend(name)
  },
)
scope.onmessage = (e) => handle(e.data)
