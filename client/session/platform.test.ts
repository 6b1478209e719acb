import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../../shared/config'
import { ALGORITHM_FACTORIES } from '../../shared/algorithms/index'
import { configWith } from '../../shared/testing/harness'
import { LsqCompute, makeLsqProblem } from '../../shared/testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../../shared/testing/memory-mesh'
import type { MeshMessage } from '../../shared/transport'
import { incrementKinds, topologyNeighbours, withSessionControls } from './platform'

const config = configWith({ stepDeadlineMs: 300 })

const roster = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`)
const membership = (n: number) => ({ epoch: 1, peers: roster(n), roles: { ps: null } })

describe('topologyNeighbours: the links a peer keeps open', () => {
  it('all-reduce algorithms link only to their two ring-order neighbours, not the whole clique', () => {
    for (const algorithm of ['ssgd', 'local-sgd', 'local-adamw', 'lap-sgd'] as const) {
      const f = topologyNeighbours(config({ algorithm, topology: 'clique' }))
      const n = 8
      let links = 0
      for (const self of roster(n)) {
        const nb = f(membership(n), self)
        const i = roster(n).indexOf(self)
        expect([...nb].sort()).toEqual([`p${(i + 1) % n}`, `p${(i + n - 1) % n}`].sort())
        links += nb.length
      }
      expect(links / 2).toBe(n) // a ring: n links, where a clique would need 28
    }
  })

  it('gossip algorithms follow their topology; the PS star links workers to the server only', () => {
    const ring = topologyNeighbours(config({ algorithm: 'dpsgd', topology: 'ring' }))
    expect([...ring(membership(6), 'p0')].sort()).toEqual(['p1', 'p5'])
    const exp = topologyNeighbours(config({ algorithm: 'decentlam', topology: 'exponential' }))
    expect(exp(membership(8), 'p0').length).toBeGreaterThan(2)
    const star = topologyNeighbours(config({ algorithm: 'asgd', topology: 'star' }))
    const m = { ...membership(5), roles: { ps: 'p2' } }
    expect(star(m, 'p4')).toEqual(['p2'])
    expect([...star(m, 'p2')].sort()).toEqual(['p0', 'p1', 'p3', 'p4'])
    expect(ring({ ...membership(3), peers: ['p1', 'p2'] }, 'p0')).toEqual([])
  })
})

/** Every kind an algorithm sends during a few steps over the memory mesh. */
async function kindsSent(cfg: RoomConfig, n = 3, steps = 4): Promise<Set<string>> {
  const prob = makeLsqProblem({ n, d: 6, m: 12, seed: 3 })
  const net = new MemoryNetwork({ seed: 1 })
  const sent = new Set<string>()
  const meshes: MemoryMesh[] = roster(n).map((id) => net.join(id))
  const stops: AbortController[] = []
  const instances = await Promise.all(meshes.map(async (mesh, i) => {
    const send = mesh.send.bind(mesh)
    mesh.send = (to: string, msg: MeshMessage, signal?: AbortSignal) => {
      if (msg.data) sent.add(msg.kind)
      return send(to, msg, signal)
    }
    const stop = new AbortController()
    stops.push(stop)
    return ALGORITHM_FACTORIES[cfg.algorithm]({
      mesh, compute: new LsqCompute(prob.shards[i]), config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now(),
    })
  }))
  await Promise.all(instances.map(async (inst) => {
    for (let k = 0; k < steps; k++) await inst.step()
  }))
  for (const inst of instances) inst.dispose()
  for (const s of stops) s.abort()
  return sent
}

describe('incrementKinds: which messages get error feedback on lossy codecs', () => {
  it('SSGD: the reduce-scatter partial sums of gradients, never the all-gathered results', async () => {
    const cfg = config({ algorithm: 'ssgd', topology: 'clique', compression: 'int8' })
    const kinds = [...(await kindsSent(cfg))]
    const ef = incrementKinds(cfg)
    const rs = kinds.filter(ef)
    expect(rs.length).toBeGreaterThan(0)
    expect(rs.every((k) => /\/rs\d+$/.test(k))).toBe(true)
    expect(kinds.filter((k) => /\/ag\d+$/.test(k)).some(ef)).toBe(false)
  })

  it('ASGD and OD-SGD: the gradient pushes to the parameter server, not the weights it sends back', async () => {
    for (const algorithm of ['asgd', 'od-sgd'] as const) {
      const cfg = config({ algorithm, topology: 'star', compression: 'fp16', warmStartSteps: 0 })
      const kinds = [...(await kindsSent(cfg))]
      const ef = incrementKinds(cfg)
      expect(kinds.filter(ef)).toEqual([`${algorithm}/push`])
      expect(kinds.some((k) => k.endsWith('/weights'))).toBe(true)
    }
  })

  it('parameter-averaging algorithms send no increments', async () => {
    for (const [algorithm, topology] of [['dpsgd', 'ring'], ['local-sgd', 'clique']] as const) {
      const cfg = config({ algorithm, topology, compression: 'int8' })
      const kinds = [...(await kindsSent(cfg))]
      expect(kinds.length).toBeGreaterThan(0)
      expect(kinds.some(incrementKinds(cfg))).toBe(false)
    }
  })
})

describe('withSessionControls', () => {
  it("passes the mesh's wire image through (an SSGD all-reduce owner rounds its chunk with it)", () => {
    const net = new MemoryNetwork({ seed: 1 })
    const inner = net.join('a')
    const calls: string[] = []
    inner.wireImage = (kind) => void calls.push(kind)
    const wrapped = withSessionControls(inner, () => {})
    expect(wrapped.wireImage).toBeTypeOf('function')
    wrapped.wireImage!('ssgd/e1/ag0', new Float32Array(2))
    expect(calls).toEqual(['ssgd/e1/ag0'])
    // fp32 meshes have none: nothing to round, and the wrapper adds none.
    expect(withSessionControls(net.join('b'), () => {}).wireImage).toBeUndefined()
  })
})
