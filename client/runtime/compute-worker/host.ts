import type { Compute, GradientResult, LocalStepOptions, LocalStepResult } from '../../../shared/algorithms/types'
import type { ComputeInit, ComputeReply, ComputeRequest, InitReply } from './protocol'

/** What WorkerCompute needs from a worker_threads Worker or a Web Worker. */
export interface ComputePort {
  post(m: ComputeRequest, transfer?: ArrayBuffer[]): void
  onMessage(fn: (m: ComputeReply) => void): void
  onError(fn: (e: Error) => void): void
  terminate(): void
  /** Node: keep the process alive while a call is outstanding (the worker is unref'd otherwise). */
  keepAlive?(on: boolean): void
}

/** Named deadline for the worker to load tfjs, its backend and the model. */
export const COMPUTE_WORKER_READY_MS = 60_000

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void }
type Req = ComputeRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never

/**
 * The Compute seam with the tfjs model on its own thread. Why: on the wasm and cpu backends a
 * gradient holds its thread for the whole forward/backward pass (≈ 200 ms for the cnn), so a
 * peer that trains on the thread that also owns its data channels answers its neighbours only
 * between gradients: a parameter server's pushes wait a whole step, an AD-PSGD partner's
 * request too. With the model here, the session thread keeps reading the mesh while the
 * gradient runs. Calls are queued and answered in order; a worker that fails rejects every
 * pending and later call with its error instead of hanging them.
 */
export class WorkerCompute implements Compute {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private failed: Error | null = null
  private closed = false

  private constructor(
    private readonly port: ComputePort,
    private readonly info: InitReply,
  ) {}

  get paramCount(): number {
    return this.info.paramCount
  }
  get schemaHash(): string {
    return this.info.schemaHash
  }
  get batchSize(): number {
    return this.info.batchSize
  }
  /** The tfjs backend the worker runs on. */
  get backend(): string {
    return this.info.backend
  }

  static async start(port: ComputePort, init: ComputeInit, signal?: AbortSignal): Promise<WorkerCompute> {
    // The reply handler exists before the init message, so a fast worker cannot answer into
    // nothing; `self` is bound once the init reply gives the layout.
    let self: WorkerCompute | null = null
    let initWait: Pending | null = null
    let early: Error | null = null
    port.onMessage((m) => (self ? self.onReply(m) : initWait && m.id === 0 && settle(initWait, m)))
    port.onError((e) => {
      if (self) self.fail(e)
      else (early = e), initWait?.reject(e)
    })
    const info = await new Promise<InitReply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`compute worker: not ready within ${COMPUTE_WORKER_READY_MS} ms (compute-worker-ready deadline)`)), COMPUTE_WORKER_READY_MS)
      const onAbort = () => reject(signal?.reason instanceof Error ? signal.reason : new Error('compute worker start aborted'))
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = () => (clearTimeout(timer), signal?.removeEventListener('abort', onAbort))
      initWait = { resolve: (v) => (done(), resolve(v as InitReply)), reject: (e) => (done(), reject(e)) }
      if (early) return initWait.reject(early)
      port.post({ id: 0, op: 'init', init })
    }).catch((e: unknown) => {
      port.terminate()
      throw e
    })
    self = new WorkerCompute(port, checkInit(info))
    return self
  }

  readParams(): Promise<Float32Array> {
    return this.call({ op: 'readParams' }).then((v) => this.vector(v, 'readParams'))
  }
  writeParams(p: Float32Array): Promise<void> {
    // The caller keeps its array; the worker's TfCompute validates the copy.
    const params = ownCopy(p)
    return this.call({ op: 'writeParams', params }, [params.buffer]).then(() => undefined)
  }
  gradient(): Promise<GradientResult> {
    return this.call({ op: 'gradient' }).then((v) => {
      const g = v as GradientResult
      this.vector(g.grad, 'gradient')
      return g
    })
  }
  localStep(opts: LocalStepOptions): Promise<LocalStepResult> {
    return this.call({ op: 'localStep', opts }).then((v) => v as LocalStepResult)
  }
  readOptimizerState(): Promise<Float32Array[]> {
    return this.call({ op: 'readOptimizerState' }).then((v) => v as Float32Array[])
  }
  writeOptimizerState(state: Float32Array[]): Promise<void> {
    const copies = state.map(ownCopy)
    return this.call({ op: 'writeOptimizerState', state: copies }, copies.map((c) => c.buffer)).then(() => undefined)
  }
  resetOptimizer(): void {
    // Synchronous in the interface: queued like every call, so the next step sees it. A failure
    // here means the worker is gone, and the next awaited call reports that.
    this.call({ op: 'resetOptimizer' }).catch(() => undefined)
  }
  /** Loss and accuracy of `params` on the worker's evaluation set. */
  evaluate(params: Float32Array): Promise<{ loss: number; accuracy: number }> {
    const copy = ownCopy(params)
    return this.call({ op: 'evaluate', params: copy }, [copy.buffer]).then((v) => v as { loss: number; accuracy: number })
  }

  /** Frees the worker's tensors and ends the thread; later calls reject. */
  dispose(): void {
    if (this.closed) return
    const bye = this.call({ op: 'dispose' })
    this.closed = true
    const end = () => this.port.terminate()
    // The worker answers 'dispose' after everything queued before it; end it then, or at once if it is gone.
    bye.then(end, end)
    setTimeout(end, 2000)
  }

  private call(req: Req, transfer?: ArrayBuffer[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('compute worker: disposed'))
    if (this.failed) return Promise.reject(this.failed)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.port.keepAlive?.(true)
      this.pending.set(id, { resolve, reject })
      try {
        this.port.post({ ...req, id } as ComputeRequest, transfer)
      } catch (e) {
        this.forget(id)
        reject(e instanceof Error ? e : new Error(String(e)))
      }
    })
  }

  private onReply(m: ComputeReply): void {
    const p = this.pending.get(m.id)
    if (!p) return
    this.forget(m.id)
    settle(p, m)
  }

  private forget(id: number): void {
    this.pending.delete(id)
    if (this.pending.size === 0) this.port.keepAlive?.(false)
  }

  private fail(e: Error): void {
    this.failed ??= new Error(`compute worker failed: ${e.message}`)
    for (const p of this.pending.values()) p.reject(this.failed)
    this.pending.clear()
    this.port.keepAlive?.(false)
  }

  private vector(v: unknown, what: string): Float32Array {
    if (!(v instanceof Float32Array) || v.length !== this.info.paramCount)
      throw new Error(`compute worker: ${what} returned ${v instanceof Float32Array ? v.length : typeof v} values, model has ${this.info.paramCount}`)
    return v
  }
}

/**
 * A copy of `v` that owns exactly its own buffer, to transfer to the worker. postMessage clones a
 * typed-array view's whole underlying ArrayBuffer, not just the view: dpsgd and dmsgd keep x in a
 * VectorArena slot, whose buffer is the arena's whole WebAssembly memory (about 9 model-sized
 * slots), so every writeParams used to copy ~9× the model across threads (a mlp tab: ~15 % of
 * its page thread in postMessage). One copy of the view, then a transfer, moves the model once.
 */
function ownCopy(v: Float32Array): Float32Array<ArrayBuffer> {
  return new Float32Array(v)
}

function settle(p: Pending, m: ComputeReply): void {
  if (m.ok) p.resolve(m.value)
  else p.reject(new Error(m.error))
}

function checkInit(v: InitReply): InitReply {
  if (!Number.isInteger(v?.paramCount) || v.paramCount < 1 || typeof v.schemaHash !== 'string' || !Number.isInteger(v.batchSize))
    throw new Error('compute worker: malformed init reply')
  return v
}
