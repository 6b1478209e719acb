import * as tf from '@tensorflow/tfjs'
// Registers 'wasm'; in Node it loads its .wasm from node_modules (no network).
import '@tensorflow/tfjs-backend-wasm'

export type NodeBackend = 'wasm' | 'cpu'

/**
 * Node peers, the simulator and tests: wasm (≈4x the cpu backend here) with cpu as fallback.
 * `@tensorflow/tfjs-node` cannot be installed on these machines (it downloads libtensorflow).
 */
export async function setupNodeBackend(prefer: NodeBackend = 'wasm'): Promise<NodeBackend> {
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
