import { TfCompute, uploadDataset, type DeviceData } from '../tf-compute'
import type { ComputeReply, ComputeRequest, InitReply } from './protocol'

/**
 * Body of the compute thread, shared by the Node entry (worker_threads) and, later, a Web
 * Worker entry: one TfCompute and the evaluation set on this thread's tfjs backend. Requests
 * run strictly one after another in arrival order, which is the order the session thread
 * issued them, so the model sees the same sequence of reads, writes and steps as a TfCompute
 * called directly.
 */
export function runComputeWorker(post: (m: ComputeReply, transfer?: ArrayBuffer[]) => void, setBackend: (name: 'wasm' | 'cpu', wasmPath?: string) => Promise<string>) {
  let compute: TfCompute | undefined
  let test: DeviceData | undefined
  let queue = Promise.resolve()

  const live = (): TfCompute => {
    if (!compute) throw new Error('compute worker: not initialised (or disposed)')
    return compute
  }

  const handle = async (m: ComputeRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> => {
    switch (m.op) {
      case 'init': {
        if (compute) throw new Error('compute worker: init twice')
        const backend = await setBackend(m.init.backend, m.init.wasmPath)
        const c = new TfCompute({ model: m.init.model, train: m.init.train, batchSize: m.init.batchSize, seed: m.init.seed, streamSeed: m.init.streamSeed })
        test = uploadDataset(m.init.test)
        compute = c
        return { value: { backend, paramCount: c.paramCount, schemaHash: c.schemaHash, batchSize: c.batchSize } satisfies InitReply }
      }
      case 'readParams': {
        const p = await live().readParams()
        return { value: p, transfer: [p.buffer as ArrayBuffer] }
      }
      case 'writeParams':
        return { value: await live().writeParams(m.params) }
      case 'gradient': {
        const g = await live().gradient()
        return { value: g, transfer: [g.grad.buffer as ArrayBuffer] }
      }
      case 'localStep':
        return { value: await live().localStep(m.opts) }
      case 'readOptimizerState': {
        const s = await live().readOptimizerState()
        return { value: s, transfer: s.map((a) => a.buffer as ArrayBuffer) }
      }
      case 'writeOptimizerState':
        return { value: await live().writeOptimizerState(m.state) }
      case 'resetOptimizer':
        return { value: live().resetOptimizer() }
      case 'evaluate': {
        if (!test) throw new Error('compute worker: no evaluation set')
        return { value: await live().evaluate(test, m.params) }
      }
      case 'dispose':
        test?.dispose()
        compute?.dispose()
        test = compute = undefined
        return { value: undefined }
    }
  }

  return (m: ComputeRequest): void => {
    queue = queue.then(async () => {
      try {
        const { value, transfer } = await handle(m)
        post({ id: m.id, ok: true, value }, transfer)
      } catch (e) {
        post({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) })
      }
    })
  }
}
