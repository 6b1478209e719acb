// Node entry of the compute thread (worker_threads). Started by node.ts.
import { parentPort } from 'node:worker_threads'
import { setupNodeBackend } from '../node-backend'
import type { ComputeRequest } from './protocol'
import { runComputeWorker } from './worker-core'

if (!parentPort) throw new Error('compute-worker/worker-node.ts must run in a worker thread')
const port = parentPort
const handle = runComputeWorker(
  (m, transfer) => port.postMessage(m, transfer ?? []),
  (name) => setupNodeBackend(name),
)
port.on('message', (m: ComputeRequest) => handle(m))
