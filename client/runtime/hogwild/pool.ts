import type { HogwildPool } from '../../../shared/algorithms/types'
import type { ModelName } from '../../../shared/config'
import type { Dataset } from '../../../shared/data/format'
import { CTRL_ABORT, CTRL_REMAINING, CTRL_SLOTS, CTRL_UPDATES, type FromWorker, type ToWorker } from './protocol'

/** What the pool needs from a Web Worker or a worker_threads Worker. */
export interface WorkerHandle {
  post(m: ToWorker): void
  onMessage(fn: (m: FromWorker) => void): void
  onError(fn: (e: Error) => void): void
  terminate(): void
}

export interface HogwildPoolOptions {
  model: ModelName
  train: Dataset
  paramCount: number
  initial: Float32Array
  batchSize: number
  seed: number
  updaters: number
  backend?: 'cpu' | 'wasm'
  wasmPath?: string
  /** Named deadline for a worker to load tfjs and its model. */
  readyTimeoutMs?: number
}

interface Slot {
  handle: WorkerHandle
  index: number
  listeners: Set<(m: FromWorker) => void>
  failed?: Error
}

/**
 * LAP-SGD's intra-tab updaters (docs/algorithms.md "LAP-SGD"): U workers share one Float32Array of
 * parameters in a SharedArrayBuffer and update it Hogwild-style, lock-free. The averaging
 * thread (the algorithm) reads `snapshot()` and applies `addInPlace(avg − snapshot)` while the
 * updaters keep writing, which keeps the updates made during the exchange.
 */
export class WorkerHogwildPool implements HogwildPool {
  private readonly shared: Float32Array
  private readonly control: Int32Array
  private readonly slots: Slot[] = []
  private desired: number
  private nextWorkerIndex = 0
  private runId = 0
  private running = false
  private closed = false

  constructor(
    private readonly opts: HogwildPoolOptions,
    private readonly spawn: () => WorkerHandle,
  ) {
    if (typeof SharedArrayBuffer === 'undefined')
      throw new Error('SharedArrayBuffer unavailable (the page needs COOP/COEP cross-origin isolation)')
    if (opts.initial.length !== opts.paramCount) throw new Error(`initial has ${opts.initial.length} values, expected ${opts.paramCount}`)
    this.shared = new Float32Array(new SharedArrayBuffer(opts.paramCount * 4))
    this.control = new Int32Array(new SharedArrayBuffer(CTRL_SLOTS * 4))
    this.overwrite(opts.initial)
    this.desired = checkU(opts.updaters)
  }

  get updaters(): number {
    return this.desired
  }
  /** Takes effect at the start of the next run() (workers are added or retired between runs). */
  set updaters(u: number) {
    this.desired = checkU(u)
  }

  get updates(): number {
    return Atomics.load(this.control, CTRL_UPDATES)
  }

  /** Workers currently alive (for diagnostics/tests). */
  get workerCount(): number {
    return this.slots.length
  }

  async run(totalUpdates: number, lr: number, signal: AbortSignal): Promise<{ loss: number; samples: number }> {
    if (this.closed) throw new Error('hogwild pool closed')
    if (this.running) throw new Error('hogwild run already in progress')
    if (!Number.isInteger(totalUpdates) || totalUpdates < 0) throw new Error(`bad totalUpdates ${totalUpdates}`)
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`bad lr ${lr}`)
    signal.throwIfAborted()
    this.running = true
    try {
      await this.reconcile(signal)
      const runId = ++this.runId
      Atomics.store(this.control, CTRL_ABORT, 0)
      Atomics.store(this.control, CTRL_REMAINING, totalUpdates)
      const onAbort = () => Atomics.store(this.control, CTRL_ABORT, 1)
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        const results = await Promise.all(
          this.slots.map((s) => this.request(s, { type: 'run', runId, lr }, (m) => m.type === 'done' && m.runId === runId)),
        )
        let lossSum = 0
        let updates = 0
        for (const r of results) if (r.type === 'done') (lossSum += r.lossSum), (updates += r.updates)
        signal.throwIfAborted()
        return { loss: updates > 0 ? lossSum / updates : NaN, samples: updates * this.opts.batchSize }
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    } finally {
      this.running = false
    }
  }

  snapshot(): Float32Array {
    return this.shared.slice()
  }

  addInPlace(delta: Float32Array): void {
    checkVec(delta, this.shared.length)
    const x = this.shared
    for (let i = 0; i < x.length; i++) x[i] += delta[i]
  }

  overwrite(x: Float32Array): void {
    checkVec(x, this.shared.length)
    this.shared.set(x)
  }

  dispose(): void {
    if (this.closed) return
    this.closed = true
    Atomics.store(this.control, CTRL_ABORT, 1)
    for (const s of this.slots.splice(0)) retire(s)
  }

  private async reconcile(signal: AbortSignal): Promise<void> {
    while (this.slots.length > this.desired) retire(this.slots.pop()!)
    const fresh: Promise<unknown>[] = []
    while (this.slots.length < this.desired) {
      const index = this.nextWorkerIndex++
      const handle = this.spawn()
      const slot: Slot = { handle, index, listeners: new Set() }
      handle.onMessage((m) => {
        if (m.type === 'error') slot.failed = new Error(`hogwild worker ${index}: ${m.message}`)
        for (const l of [...slot.listeners]) l(m)
      })
      handle.onError((e) => {
        slot.failed = e
        for (const l of [...slot.listeners]) l({ type: 'error', message: e.message })
      })
      this.slots.push(slot)
      const { model, train, batchSize, seed, backend = 'wasm', wasmPath } = this.opts
      fresh.push(
        this.request(
          slot,
          { type: 'init', params: this.shared.buffer as SharedArrayBuffer, control: this.control.buffer as SharedArrayBuffer,
            model, train, batchSize, seed, streamSeed: 1000 + index, backend, wasmPath },
          (m) => m.type === 'ready',
          this.opts.readyTimeoutMs ?? 60_000,
          signal,
        ),
      )
    }
    try {
      await Promise.all(fresh)
    } catch (e) {
      // Drop the workers that failed so the next run retries them.
      for (const s of this.slots.filter((s) => s.failed)) retire(s)
      this.slots.splice(0, this.slots.length, ...this.slots.filter((s) => !s.failed))
      throw e
    }
  }

  private request(slot: Slot, msg: ToWorker, done: (m: FromWorker) => boolean, timeoutMs?: number, signal?: AbortSignal): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const finish = (err: Error | null, m?: FromWorker) => {
        slot.listeners.delete(listener)
        if (timer) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (err) reject(err)
        else resolve(m!)
      }
      const listener = (m: FromWorker) => {
        if (m.type === 'error') {
          slot.failed ??= new Error(m.message)
          finish(new Error(`hogwild worker ${slot.index}: ${m.message}`))
        } else if (done(m)) finish(null, m)
      }
      const onAbort = () => finish(new Error(`hogwild worker ${slot.index}: aborted`))
      if (timeoutMs !== undefined)
        timer = setTimeout(() => {
          slot.failed ??= new Error('ready timeout')
          finish(new Error(`hogwild-worker-ready deadline (${timeoutMs} ms) passed for worker ${slot.index}`))
        }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      slot.listeners.add(listener)
      slot.handle.post(msg)
    })
  }
}

function retire(s: Slot): void {
  try {
    s.handle.post({ type: 'close' })
  } catch {
    // already gone
  }
  s.handle.terminate()
}

function checkU(u: number): number {
  if (!Number.isInteger(u) || u < 1 || u > 16) throw new Error(`updaters must be an integer in [1, 16], got ${u}`)
  return u
}

function checkVec(v: Float32Array, n: number): void {
  if (v.length !== n) throw new Error(`hogwild: ${v.length} values, expected ${n}`)
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new Error(`hogwild: non-finite value at ${i}`)
}
