import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { FromWorker } from './protocol'
import { WorkerHogwildPool, type HogwildPoolOptions, type WorkerHandle } from './pool'

/**
 * The worker entry is TypeScript. Node 20 does not pass `--import tsx` loader hooks on to
 * worker threads, so each worker starts from a tiny JS bootstrap that registers tsx's ESM
 * hooks in its own thread and then imports worker-node.ts.
 */
function bootstrapCode(): string {
  const require = createRequire(import.meta.url)
  const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href
  const entry = new URL('./worker-node.ts', import.meta.url).href
  return `(async () => {
  const { register } = await import(${JSON.stringify(tsxApi)}); register()
  await import(${JSON.stringify(entry)})
})().catch((e) => { console.error(e); process.exit(1) })`
}

/** Hogwild pool over worker_threads (Node peers, simulator, tests). */
export function createNodeHogwildPool(opts: HogwildPoolOptions): WorkerHogwildPool {
  const code = bootstrapCode()
  const spawn = (): WorkerHandle => {
    const w = new Worker(code, { eval: true })
    w.unref()
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
