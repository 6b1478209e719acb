import { describe, expect, it } from 'vitest'
import { defaultConfig, parseRoomConfig, TOPOLOGIES, type AlgorithmName, type RoomConfig } from '../config'
import { gradientFromComputes, InProcessHogwildPool } from '../testing/inprocess-hogwild'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import type { MeshMessage } from '../transport'
import { ALGORITHM_DESCRIPTORS, ALGORITHMS, linkTopology, topologyRule } from './descriptors'
import { ALGORITHM_FACTORIES } from './index'
import { kindMatcher } from './message-kinds'

describe('algorithm descriptors', () => {
  it('the config accepts exactly the topologies a descriptor lists, defaults to its own, and names the rule', () => {
    for (const a of ALGORITHMS) {
      const d = ALGORITHM_DESCRIPTORS[a]
      expect(d.topologies, a).toContain(d.defaultTopology)
      expect(defaultConfig(a).topology, a).toBe(d.defaultTopology)
      for (const topology of TOPOLOGIES) {
        const r = parseRoomConfig({ algorithm: a, topology })
        expect(r.ok, `${a} on ${topology}`).toBe(d.topologies.includes(topology))
        if (!r.ok) expect(r.error).toBe(`topology: ${topologyRule(a)}`)
      }
    }
  })

  it('the all-reduce family links a ring; the others their room topology', () => {
    for (const a of ALGORITHMS) {
      const c = defaultConfig(a)
      expect(linkTopology(c), a).toBe(ALGORITHM_DESCRIPTORS[a].family === 'all-reduce' ? 'ring' : c.topology)
      // Robust mode all-gathers (common.ts allGatherWithRetry): every member talks to every other.
      expect(linkTopology({ ...c, robust: 'on' }), a).toBe(c.topology)
    }
  })

  it('every kind an algorithm sends (steps, bootstrap, a leave) matches its descriptor; only gradient senders mark increments', async () => {
    const sendsGradients: readonly AlgorithmName[] = ['ssgd', 'asgd', 'od-sgd']
    for (const a of ALGORITHMS) {
      const d = ALGORITHM_DESCRIPTORS[a]
      const patterns = d.messageKinds.sends.map(kindMatcher)
      const sent = await kindsSent(config(a))
      expect(sent.size, a).toBeGreaterThan(0)
      for (const k of sent) expect(patterns.some((p) => p(k)), `${a} sends '${k}'`).toBe(true)
      expect([...sent].some(d.messageKinds.increments), a).toBe(sendsGradients.includes(a))
    }
  })
})

function config(algorithm: AlgorithmName): RoomConfig {
  const r = parseRoomConfig({ algorithm, stepDeadlineMs: 300, warmStartSteps: 0, schedule: { kind: 'constant', warmupSteps: 0 }, sync: { kind: 'constant', h: 2 } })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

/** Every kind sent by 3 peers over a few steps on the memory mesh, and by one of them leaving. */
async function kindsSent(cfg: RoomConfig, n = 3, steps = 4): Promise<Set<string>> {
  const prob = makeLsqProblem({ n, d: 6, m: 12, seed: 3 })
  const net = new MemoryNetwork({ seed: 1 })
  const sent = new Set<string>()
  const stops: AbortController[] = []
  const instances = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const mesh = net.join(`p${i}`)
    const send = mesh.send.bind(mesh)
    mesh.send = (to: string, msg: MeshMessage, signal?: AbortSignal) => {
      sent.add(msg.kind)
      return send(to, msg, signal)
    }
    const stop = new AbortController()
    stops.push(stop)
    const compute = new LsqCompute(prob.shards[i])
    const hogwild = ALGORITHM_DESCRIPTORS[cfg.algorithm].hogwild
      ? new InProcessHogwildPool(new Float32Array(compute.paramCount), gradientFromComputes([compute]))
      : undefined
    return ALGORITHM_FACTORIES[cfg.algorithm]({
      mesh, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now(), hogwild,
    })
  }))
  await Promise.all(instances.map(async (inst) => {
    for (let k = 0; k < steps; k++) await inst.step()
  }))
  await instances[0].leave()
  for (const inst of instances) inst.dispose()
  for (const s of stops) s.abort()
  return sent
}
