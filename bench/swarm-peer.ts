/**
 * A benchmark worker in its own OS process (forked with tsx + IPC) for bench/overhead.ts and
 * bench/scale.ts. Two modes, chosen by argv[2]:
 *  - `swarm URL ROOM NAME`: a real headless Node volunteer (createNodeSession: signaling, WebRTC
 *    via @roamhq/wrtc, the room's algorithm, tfjs wasm); every session snapshot's step and byte
 *    counters are timestamped and posted to the parent.
 *  - `plain MODEL BATCH SECONDS`: the baseline, a plain tfjs loop (TfCompute.localStep, SGD with
 *    momentum on the device) on the same backend, model and synthetic data; then the same with a
 *    gradient read-back per step (what the gossip algorithms do). Posts steps/s for both.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createNodeSession } from '../client/node/node-platform'
import type { SessionSnapshot } from '../client/session/types'
import { formatLogLine } from '../client/session/wording'
import { maybeSampleAllocations, maybeSampleMemory } from './common'
import { processCpuMs as cpuMs } from './threads'

/** `cpuMs`: this process's CPU time so far (user + system, every thread: main, compute worker, V8 and WebRTC helpers). */
type Sample = { t: number; step: number; samples: number; bytesSent: number; bytesReceived: number; stage: string; cpuMs: number; evalMs: number }
const post = (m: unknown) => process.send?.(m)
const [mode, a1, a2, a3] = process.argv.slice(2)

if (mode === 'swarm') {
  maybeSampleAllocations(`swarm-${a3}`)
  maybeSampleMemory(`swarm-${a3}`)
  // BENCH_WEBRTC=node-datachannel: the other Node WebRTC stack (bound to loopback: the benchmarks
  // run in a loopback-only namespace, where it finds no address of its own).
  const stack = process.env.BENCH_WEBRTC === 'node-datachannel' ? 'node-datachannel' : 'wrtc'
  const session = createNodeSession({
    server: a1, room: a2, name: a3, backend: 'wasm', webrtc: stack === 'node-datachannel' ? { stack, bindAddress: '127.0.0.1' } : { stack },
  })
  let last: Sample | null = null
  const buf: Sample[] = []
  // BENCH_PEER_LOG_DIR=DIR: every peer appends its session log (joins, epochs, deadlines, folds)
  // to DIR/NAME.log, to see why a swarm stalled after the fact.
  const logDir = process.env.BENCH_PEER_LOG_DIR
  let lastLog: SessionSnapshot['log'] = []
  if (logDir) mkdirSync(logDir, { recursive: true })
  session.subscribe((s) => {
    if (logDir && s.log !== lastLog) {
      // The snapshot keeps a sliding window of lines: append the ones after the last seen.
      const seen = lastLog.at(-1)
      const from = seen === undefined ? 0 : s.log.lastIndexOf(seen) + 1
      if (from < s.log.length) appendFileSync(join(logDir, `${a3}.log`), s.log.slice(from).map(formatLogLine).join('\n') + '\n')
      lastLog = s.log
    }
    const x = { t: Date.now(), step: s.step, samples: s.samples, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, stage: s.stage, cpuMs: cpuMs(), evalMs: s.evalMs }
    if (last && last.step === x.step && last.stage === x.stage) return
    last = x
    buf.push(x)
    if (s.stage === 'error') post({ ev: 'error', error: s.error })
  })
  const flush = setInterval(() => {
    if (buf.length) post({ ev: 'samples', samples: buf.splice(0) })
  }, 500)
  process.on('message', async (m: { op: string }) => {
    if (m.op === 'stop') {
      clearInterval(flush)
      post({ ev: 'samples', samples: buf.splice(0) })
      post({ ev: 'final', snapshot: { ...session.snapshot(), log: undefined, config: undefined } })
      await Promise.race([session.leave(), new Promise((r) => setTimeout(r, 2000))])
      process.exit(0)
    }
  })
  await session.start()
} else if (mode === 'plain') {
  const { setupNodeBackend } = await import('../client/runtime/node-backend')
  const { loadDatasetNode } = await import('../client/runtime/data-loader-node')
  const { TfCompute } = await import('../client/runtime/tf-compute')
  const backend = await setupNodeBackend('wasm')
  const train = await loadDatasetNode('synthetic', 'train')
  const c = new TfCompute({ model: a1 as 'mlp', train, batchSize: Number(a2), seed: 0, streamSeed: 0 })
  const seconds = Number(a3)
  const measure = async (one: () => Promise<unknown>) => {
    for (let i = 0; i < 30; i++) await one()
    const t0 = performance.now()
    let n = 0
    while (performance.now() - t0 < seconds * 1000) (await one(), n++)
    return n / ((performance.now() - t0) / 1000)
  }
  const localStepsPerSec = await measure(() => c.localStep({ optimizer: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 }))
  const gradientStepsPerSec = await measure(async () => {
    const g = await c.gradient()
    const x = await c.readParams()
    for (let i = 0; i < x.length; i++) x[i] -= 0.01 * g.grad[i]
    await c.writeParams(x)
  })
  post({ ev: 'plain', backend, localStepsPerSec, gradientStepsPerSec, paramCount: c.paramCount })
  c.dispose()
  process.exit(0)
}
