import * as tf from '@tensorflow/tfjs'
import { setFlagsFromString } from 'node:v8'
// Registers 'wasm'; in Node it loads its .wasm from node_modules (no network).
import '@tensorflow/tfjs-backend-wasm'

export type NodeBackend = 'wasm' | 'cpu'

/**
 * Node peers, the simulator and tests: wasm (≈4x the cpu backend here) with cpu as fallback.
 * `@tensorflow/tfjs-node` cannot be installed on these machines (it downloads libtensorflow).
 */
export async function setupNodeBackend(prefer: NodeBackend = 'wasm'): Promise<NodeBackend> {
  tuneNodeGc()
  const order: NodeBackend[] = prefer === 'wasm' ? ['wasm', 'cpu'] : ['cpu']
  for (const name of order) {
    try {
      if ((await tf.setBackend(name)) && tf.getBackend() === name) {
        await tf.ready()
        return name
      }
    } catch {
      // try the next one
    }
  }
  throw new Error('no tfjs backend could be initialised in Node')
}

/**
 * Old-generation growth for a training process: the next full collection waits until the old
 * generation has doubled (V8's factor is otherwise down to 1.1 here). Measured on a cnn swarm
 * peer (docs/benchmarks-history.md, 2026-12-02 b): tfjs-wasm allocates ~800 MB/s of short-lived typed
 * array views, so V8 judges its collector fast and keeps the limit at live size + ~24 MB; with a
 * 16 MB young generation that leaves the soft marking trigger permanently reached, and a process
 * that yields to the event loop (every swarm peer does, for its messages) then runs a full
 * mark-compact about every step: 3–5 per second, against 0–1 in 5 s with this setting. The flag
 * is read each time V8 computes a limit, so setting it after start-up takes effect at the next
 * collection. TABSWARM_NODE_GC=default leaves V8's own heuristic (to measure the difference).
 */
let gcTuned = false
export function tuneNodeGc(): void {
  if (gcTuned || process.env.TABSWARM_NODE_GC === 'default') return
  gcTuned = true
  setFlagsFromString('--heap-growing-percent=100')
}
