import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../config'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { maxAbsDiff } from '../math/vector'
import { dpsgd, yieldToEventLoop } from './dpsgd'
import { ALGORITHM_FACTORIES } from './index'

describe('DPSGD (AWC) overlaps the exchange of x_k with the gradient at x_k', () => {
  it('the model is on its way before a synchronous gradient starts, and the sent vector is a snapshot', async () => {
    const r = parseRoomConfig({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0.5, stepDeadlineMs: 500, schedule: { kind: 'constant', warmupSteps: 0 } })
    if (!r.ok) throw new Error(r.error)
    const cfg = r.config
    const prob = makeLsqProblem({ n: 2, d: 6, m: 12, seed: 3 })
    const net = new MemoryNetwork({ seed: 1 })
    const events: string[] = []
    const sent: { data: Float32Array; copy: Float32Array }[] = []
    const peers = await Promise.all([0, 1].map(async (i) => {
      const mesh = net.join(`p${i}`)
      const compute = new LsqCompute(prob.shards[i])
      if (i === 0) {
        // Like WebRtcMesh: encoding and the channel write happen some microtasks after send().
        const realSend = mesh.send.bind(mesh)
        mesh.send = async (to, msg, signal) => {
          for (let k = 0; k < 5; k++) await Promise.resolve()
          if (msg.kind === 'dpsgd/x' && msg.data) {
            events.push('sent')
            sent.push({ data: msg.data, copy: msg.data.slice() })
          }
          return realSend(to, msg, signal)
        }
        // Like tfjs on wasm/cpu: the whole gradient runs synchronously inside the call.
        const realGradient = compute.gradient.bind(compute)
        compute.gradient = () => {
          events.push('gradient')
          return realGradient()
        }
      }
      const stop = new AbortController()
      const inst = await dpsgd({ mesh, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now() })
      return { inst, stop }
    }))
    await Promise.all(peers.map(async (p) => {
      for (let k = 0; k < 4; k++) await p.inst.step()
    }))
    expect(events).toEqual(['sent', 'gradient', 'sent', 'gradient', 'sent', 'gradient', 'sent', 'gradient'])
    // x is updated in place after each step; what was handed to the mesh must not change.
    for (const s of sent) expect(Array.from(s.data)).toEqual(Array.from(s.copy))
    expect(Array.from(sent[0].data)).not.toEqual(Array.from(sent[3].data))
    for (const p of peers) {
      p.stop.abort()
      p.inst.dispose()
    }
  })

  it('yieldToEventLoop runs after every pending microtask', async () => {
    const order: string[] = []
    const y = yieldToEventLoop().then(() => order.push('yield'))
    void (async () => {
      for (let k = 0; k < 20; k++) await Promise.resolve()
      order.push('microtasks')
    })()
    await y
    expect(order).toEqual(['microtasks', 'yield'])
  })
})

describe('gossip joiners start from their neighbours\' average', () => {
  for (const algorithm of ['dpsgd', 'decentlam'] as const) {
    it(`${algorithm}: right after the factory returns, x = mean of the future ring neighbours' models`, async () => {
      const r = parseRoomConfig({ algorithm, topology: 'ring', lr: 0.05, momentum: 0.5, stepDeadlineMs: 2000, schedule: { kind: 'constant', warmupSteps: 0 } })
      if (!r.ok) throw new Error(r.error)
      const prob = makeLsqProblem({ n: 5, d: 6, m: 12, seed: 8 })
      const net = new MemoryNetwork({ seed: 2 })
      const ctx = (i: number, compute: LsqCompute) => ({
        mesh: net.mesh(`p${i}`) ?? net.join(`p${i}`), compute, config: r.config, signal: new AbortController().signal,
        log: () => {}, now: () => performance.now(),
      })
      const factory = ALGORITHM_FACTORIES[algorithm]
      for (let i = 0; i < 4; i++) net.join(`p${i}`)
      const peers = await Promise.all([0, 1, 2, 3].map((i) => factory(ctx(i, new LsqCompute(prob.shards[i], { batchSize: 4 })))))
      for (let k = 0; k < 6; k++) await Promise.all(peers.map((p) => p.step()))
      // The incumbents are idle now. Roster [p0 p1 p2 p3 p4]: the joiner's ring neighbours are p3 and p0.
      const x0 = await peers[0].evalParams()
      const x3 = await peers[3].evalParams()
      const own = Float32Array.from({ length: 6 }, (_, k) => 100 + k) // far from everyone
      const compute = new LsqCompute(prob.shards[4], { batchSize: 4, init: own })
      const joiner = await factory(ctx(4, compute))
      // Hand-derived: averageParams sums ½·x3 + ½·x0 in fp32 (requestState returns targets in order).
      const want = new Float32Array(6)
      for (const x of [x3, x0]) for (let k = 0; k < 6; k++) want[k] += 0.5 * x[k]
      const start = await joiner.evalParams()
      expect(maxAbsDiff(start, want)).toBeLessThan(1e-6)
      // …and the device holds it too (the first gradient is taken there).
      expect(maxAbsDiff(await compute.readParams(), want)).toBeLessThan(1e-6)
      expect(maxAbsDiff(start, own)).toBeGreaterThan(50)
      for (const p of [...peers, joiner]) p.dispose()
    })
  }
})
