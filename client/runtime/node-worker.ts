import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'

/**
 * Starts a worker_threads Worker on a TypeScript entry. Node 20 does not pass `--import tsx`
 * loader hooks on to worker threads, so the worker starts from a tiny JS bootstrap that
 * registers tsx's ESM hooks in its own thread and then imports the entry. Unref'd: a worker
 * never keeps the process alive by itself.
 */
export function spawnTsWorker(entry: URL): Worker {
  const require = createRequire(import.meta.url)
  const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href
  const code = `(async () => {
  const { register } = await import(${JSON.stringify(tsxApi)}); register()
  await import(${JSON.stringify(entry.href)})
})().catch((e) => { console.error(e); process.exit(1) })`
  const w = new Worker(code, { eval: true })
  w.unref()
  return w
}
