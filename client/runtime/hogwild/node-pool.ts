import type { FromWorker } from './protocol'
import { spawnTsWorker } from '../node-worker'
import { WorkerHogwildPool, type HogwildPoolOptions, type WorkerHandle } from './pool'

/** Hogwild pool over worker_threads (Node peers, simulator, tests). */
export function createNodeHogwildPool(opts: HogwildPoolOptions): WorkerHogwildPool {
  const spawn = (): WorkerHandle => {
    const w = spawnTsWorker(new URL('./worker-node.ts', import.meta.url))
    return {
      post: (m) => w.postMessage(m),
      onMessage: (fn) => w.on('message', (m: FromWorker) => fn(m)),
      onError: (fn) => {
        w.on('error', fn)
        w.on('exit', (code) => code !== 0 && fn(new Error(`worker exited with code ${code}`)))
      },
      terminate: () => void w.terminate(),
    }
  }
  return new WorkerHogwildPool({ backend: 'wasm', ...opts }, spawn)
}
