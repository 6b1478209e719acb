// Node entry of a Hogwild updater (worker_threads). Started by node-pool.ts.
import { parentPort } from 'node:worker_threads'
import '@tensorflow/tfjs-backend-wasm'
import type { ToWorker } from './protocol'
import { runHogwildWorker, setWorkerBackend } from './worker-core'

if (!parentPort) throw new Error('worker-node.ts must run in a worker thread')
const port = parentPort
const handle = runHogwildWorker((m) => port.postMessage(m), (init) => setWorkerBackend(init.backend))
port.on('message', (m: ToWorker) => {
  handle(m)
  if (m.type === 'close') setTimeout(() => port.close(), 0)
})
