import * as tf from '@tensorflow/tfjs'
import { TfCompute } from '../tf-compute'
import { CTRL_ABORT, CTRL_REMAINING, CTRL_UPDATES, type FromWorker, type InitMessage, type ToWorker } from './protocol'

/**
 * Body of one Hogwild updater, shared by the browser and Node entries: read the shared x
 * (no lock), compute a minibatch gradient with its own tfjs model, write x -= lr·g in place
 * (racing with the other updaters, by design: Recht et al. 2011), count the update atomically.
 */
export function runHogwildWorker(post: (m: FromWorker) => void, setBackend: (m: InitMessage) => Promise<string>) {
  let compute: TfCompute | undefined
  let params: Float32Array | undefined
  let control: Int32Array | undefined
  let queue = Promise.resolve()

  const run = async (runId: number, lr: number) => {
    if (!compute || !params || !control) throw new Error('run before init')
    let lossSum = 0
    let updates = 0
    while (Atomics.load(control, CTRL_ABORT) === 0) {
      if (Atomics.sub(control, CTRL_REMAINING, 1) <= 0) {
        Atomics.add(control, CTRL_REMAINING, 1)
        break
      }
      // slice() copies out of shared memory: tfjs must not read a buffer that changes under it.
      await compute.writeParams(params.slice())
      const { grad, loss } = await compute.gradient()
      for (let i = 0; i < grad.length; i++) params[i] -= lr * grad[i]
      Atomics.add(control, CTRL_UPDATES, 1)
      lossSum += loss
      updates++
    }
    post({ type: 'done', runId, lossSum, updates })
  }

  return (msg: ToWorker): void => {
    // Serialise handling so a 'run' never starts before 'init' finished.
    queue = queue
      .then(async () => {
        if (msg.type === 'init') {
          const backend = await setBackend(msg)
          params = new Float32Array(msg.params)
          control = new Int32Array(msg.control)
          compute = new TfCompute({ model: msg.model, train: msg.train, batchSize: msg.batchSize, seed: msg.seed, streamSeed: msg.streamSeed })
          post({ type: 'ready', backend })
        } else if (msg.type === 'run') {
          await run(msg.runId, msg.lr)
        } else {
          compute?.dispose()
          compute = undefined
        }
      })
      .catch((e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }))
  }
}

export async function setWorkerBackend(name: 'cpu' | 'wasm'): Promise<string> {
  if (name === 'wasm' && /\bFirefox\//.test(globalThis.navigator?.userAgent ?? '')) {
    // Firefox now and then never finishes initialising tfjs's threaded wasm inside a worker
    // (its threads are workers nested in this one), and the page waits for 'ready' until its
    // deadline. One thread per worker there: the workers are the parallelism anyway.
    try {
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false)
    } catch {
      // Flag not registered (no wasm backend imported): nothing to turn off.
    }
  }
  for (const b of name === 'wasm' ? ['wasm', 'cpu'] : ['cpu']) {
    try {
      if (await tf.setBackend(b)) {
        await tf.ready()
        return b
      }
    } catch {
      // next
    }
  }
  throw new Error('no tfjs backend in hogwild worker')
}
