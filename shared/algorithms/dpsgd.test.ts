import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../config'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { dpsgd, yieldToEventLoop } from './dpsgd'

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
