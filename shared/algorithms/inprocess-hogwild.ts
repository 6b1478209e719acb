import type { Compute, GradientResult, HogwildPool } from './types'

/**
 * In-process HogwildPool (docs/algorithms.md "Hogwild updaters") for tests, the simulator, and
 * lap-sgd's one-updater fallback in a tab without shared memory (lap-sgd.ts): U asynchronous
 * "updaters" share one Float32Array. Each update reads a copy of x, awaits its gradient (the
 * await is where other updaters and the averager interleave, as threads would), then writes
 * x −= lr·g element-wise in place without any lock. Single-threaded JS makes every write
 * atomic, so this models staleness (reads racing with writes) but not torn vectors; the
 * Web Worker / worker_threads pool over a SharedArrayBuffer is the real thing.
 */

/** Gradient of the next minibatch of updater `u` at `x` (x is the updater's private copy). */
export type HogwildGradient = (x: Float32Array, u: number) => Promise<GradientResult> | GradientResult

export class InProcessHogwildPool implements HogwildPool {
  updaters: number
  private readonly x: Float32Array
  private count = 0

  constructor(init: Float32Array, private readonly grad: HogwildGradient, opts: { updaters?: number } = {}) {
    this.x = new Float32Array(init)
    this.updaters = Math.max(1, opts.updaters ?? 1)
  }

  get updates(): number {
    return this.count
  }

  async run(totalUpdates: number, lr: number, signal: AbortSignal): Promise<{ loss: number; samples: number }> {
    let claimed = 0
    let loss = 0
    let samples = 0
    let done = 0
    const updater = async (u: number) => {
      while (claimed < totalUpdates) {
        if (signal.aborted) throw signal.reason
        claimed++
        const r = await this.grad(new Float32Array(this.x), u)
        const g = r.grad
        if (g.length !== this.x.length) throw new Error('hogwild: gradient has the wrong length')
        // Hogwild write: in place, against whatever x is now (other updaters may have moved it).
        for (let k = 0; k < g.length; k++) this.x[k] -= lr * g[k]
        this.count++
        loss += r.loss
        samples += r.samples
        done++
      }
    }
    // U is read once per run: a change of `updaters` takes effect at the next run (docs/algorithms.md "LAP-SGD under churn").
    await Promise.all(Array.from({ length: this.updaters }, (_, u) => updater(u)))
    return { loss: done > 0 ? loss / done : NaN, samples }
  }

  snapshot(): Float32Array {
    return new Float32Array(this.x)
  }

  addInPlace(delta: Float32Array): void {
    if (delta.length !== this.x.length) throw new Error('hogwild: delta has the wrong length')
    for (let k = 0; k < delta.length; k++) this.x[k] += delta[k]
  }

  overwrite(x: Float32Array): void {
    if (x.length !== this.x.length) throw new Error('hogwild: overwrite with the wrong length')
    this.x.set(x)
  }
}

/**
 * Gradient function over Compute instances (e.g. LsqCompute on one shard): updater u uses
 * computes[u mod n], writing the read copy into it first, so updaters never share a Compute's
 * parameters or minibatch cursor mid-call.
 */
export function gradientFromComputes(computes: readonly Compute[]): HogwildGradient {
  if (computes.length === 0) throw new Error('gradientFromComputes: no computes')
  return async (x, u) => {
    const c = computes[u % computes.length]
    await c.writeParams(x)
    return c.gradient()
  }
}
