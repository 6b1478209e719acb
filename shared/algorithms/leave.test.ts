import { describe, expect, it } from 'vitest'
import type { AlgorithmName, RoomConfig } from '../config'
import { FAULTS, silentPeer } from '../testing/faults'
import { flatShard as flat, testConfig } from '../testing/harness'
import { InProcessHogwildPool } from '../testing/inprocess-hogwild'
import { LsqCompute } from '../testing/lsq-compute'
import { MemoryNetwork, type MemoryMesh } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { leaveShare, LEAVE_HANDOVER_MS } from './common'
import { ALGORITHM_FACTORIES } from './index'
import type { AlgorithmInstance, HogwildPool } from './types'

/**
 * Graceful leave (docs/algorithms.md "Graceful leave") for the algorithms without a server role: the leaver hands its model to
 * its topology neighbours once, and they fold it in once with share s = (n−1)/(n·k) (common.ts
 * leaveShare), which keeps the network mean when the receivers' mean equals the others' mean.
 * Gradients are exactly 0 (flat loss), so only the hand-over and the mixing move the models.
 */

const zeroGrad = async (x: Float32Array) => ({ grad: new Float32Array(x.length), loss: 0, samples: 1 })

const config = (algorithm: AlgorithmName, over: Record<string, unknown>): RoomConfig =>
  testConfig({ algorithm, lr: 0.1, momentum: 0, weightDecay: 0, stepDeadlineMs: 2000, ...over })

interface Peer { id: string; mesh: MemoryMesh; inst: AlgorithmInstance; stop: AbortController }

async function startAll(net: MemoryNetwork, inits: Float32Array[], cfg: RoomConfig): Promise<Peer[]> {
  const ids = inits.map((_, i) => `p${i}`)
  for (const id of ids) net.join(id)
  const peers = await Promise.all(ids.map(async (id, i) => {
    const mesh = net.mesh(id)!
    const stop = new AbortController()
    const compute = new LsqCompute(flat(inits[i].length), { init: inits[i] })
    const hogwild: HogwildPool | undefined = cfg.algorithm === 'lap-sgd' ? new InProcessHogwildPool(inits[i], zeroGrad) : undefined
    const inst = await ALGORITHM_FACTORIES[cfg.algorithm]({
      mesh, compute, config: cfg, signal: stop.signal, log: () => {}, now: () => performance.now(), ...(hogwild ? { hogwild } : {}),
    })
    return { id, mesh, inst, stop, compute, hogwild }
  }))
  // Peers that start together can bootstrap from one another (docs/algorithms.md "Joining a running swarm": a late request meets a peer
  // that is already ready). The local-SGD family keeps its model in the compute (or the Hogwild
  // pool), so the test's models are set there once everyone is up; the gossip family keeps x
  // inside the instance, and there the no-latency mesh keeps the inits (see meanAfterLeave).
  for (const [i, p] of peers.entries()) {
    if (p.hogwild) p.hogwild.overwrite(inits[i])
    else if (cfg.algorithm === 'local-sgd' || cfg.algorithm === 'local-adamw') await p.compute.writeParams(inits[i])
  }
  return peers
}

const v = (c: number) => Float32Array.of(c, 2 * c, -c)

function mean(xs: Float32Array[]): number[] {
  return [0, 1, 2].map((k) => xs.reduce((s, x) => s + x[k], 0) / xs.length)
}

/**
 * Starts the peers, lets `leaver` go (gracefully or not), runs two steps on the others and returns
 * their mean. Two steps: a hand-over folded more than once would move the mean again.
 */
async function meanAfterLeave(cfg: RoomConfig, inits: Float32Array[], leaverIndex: number, graceful: boolean): Promise<number[]> {
  // No latency: every bootstrap request is answered 'not ready yet' (all start together), so each
  // peer keeps its own init. With jittered latency a late request can meet a neighbour that is
  // already ready, and the requester starts from that neighbour's model instead (docs/algorithms.md "Joining a running swarm").
  const net = new MemoryNetwork({ seed: 5 })
  const peers = await startAll(net, inits, cfg)
  for (const [i, p] of peers.entries()) expect([...(await p.inst.evalParams())]).toEqual([...inits[i]])
  const leaver = peers[leaverIndex]
  if (graceful) await leaver.inst.leave()
  net.leave(leaver.id)
  leaver.stop.abort()
  leaver.inst.dispose()
  const stay = peers.filter((p) => p !== leaver)
  for (let k = 0; k < 2; k++) await Promise.all(stay.map((p) => p.inst.step()))
  // AD-PSGD's passive halves land one hop after the initiators return.
  await sleep(30)
  const xs = await Promise.all(stay.map((p) => p.inst.evalParams()))
  for (const p of stay) p.stop.abort(), p.inst.dispose()
  return mean(xs)
}

describe('graceful leave hands the model to the neighbours once', () => {
  // Ring of 5, leaver p2 (an outlier at 10): its neighbours p1, p3 have the same mean as all the
  // others (p0 + p4 = p1 + p3 = 4), so the share (n−1)/(n·k) = 4/10 keeps the mean exactly:
  // before 18/5 = 3.6; abrupt: (0 + 1 + 3 + 4)/4 = 2; graceful: p1 → 1 + 0.4·9 = 4.6,
  // p3 → 3 + 0.4·7 = 5.8, mean (0 + 4.6 + 5.8 + 4)/4 = 3.6.
  const ring = [0, 1, 10, 3, 4].map(v)
  // Clique of 3 (all-reduce family), leaver p2 at 9: share 2/(3·2) = 1/3; before (0+3+9)/3 = 4;
  // abrupt 1.5; graceful p0 → 3, p1 → 5, mean 4 (exact for any models on a clique).
  const clique = [0, 3, 9].map(v)
  const cases: [AlgorithmName, Record<string, unknown>, Float32Array[], number, number][] = [
    ['dpsgd', { topology: 'ring' }, ring, 3.6, 2],
    ['dpsgd', { topology: 'ring', order: 'atc' }, ring, 3.6, 2],
    ['dmsgd', { topology: 'ring' }, ring, 3.6, 2],
    ['decentlam', { topology: 'ring', momentum: 0.5 }, ring, 3.6, 2],
    ['ad-psgd', { topology: 'ring' }, ring, 3.6, 2],
    ['local-sgd', { sync: { kind: 'constant', h: 1 } }, clique, 4, 1.5],
    // 5 peers: the hand-over goes to the ring-order neighbours p1, p3 (the links the ring
    // all-reduce uses), k = 2, share 0.4 as on the ring; the next averaging spreads it.
    ['local-sgd', { sync: { kind: 'constant', h: 1 } }, ring, 3.6, 2],
    ['local-adamw', { sync: { kind: 'constant', h: 1 }, lr: 0.01 }, clique, 4, 1.5],
    ['lap-sgd', { sync: { kind: 'constant', h: 2 }, updaters: 2 }, clique, 4, 1.5],
  ]
  for (const [algorithm, over, inits, before, abrupt] of cases) {
    it(`${algorithm}${over.order ? ` (${String(over.order)})` : ''}, ${inits.length} peers: the network mean is kept; an abrupt leave loses it`, async () => {
      const cfg = config(algorithm, over)
      const g = await meanAfterLeave(cfg, inits, 2, true)
      const a = await meanAfterLeave(cfg, inits, 2, false)
      const want = [before, 2 * before, -before]
      for (let k = 0; k < 3; k++) {
        expect(g[k]).toBeCloseTo(want[k], 4)
        expect(a[k]).toBeCloseTo([abrupt, 2 * abrupt, -abrupt][k], 4)
      }
    })
  }

  it('the share: ½ of the way on a big ring, 1/n on a clique, capped for a leaf', () => {
    expect(leaveShare(5, 2)).toBeCloseTo(0.4, 12)
    expect(leaveShare(1000, 2)).toBeCloseTo(0.4995, 12)
    expect(leaveShare(3, 2)).toBeCloseTo(1 / 3, 12)
    expect(leaveShare(2, 1)).toBe(0.5)
    expect(leaveShare(10, 1)).toBe(0.5)
  })

  it('never blocks: a leaver whose neighbours do not answer returns within its bound', async () => {
    const cfg = config('dpsgd', { topology: 'ring', stepDeadlineMs: 3000 })
    const net = new MemoryNetwork({ seed: 6 })
    const peers = await startAll(net, ring, cfg)
    // p1 and p3 (the leaver's neighbours) are hung: nothing they send arrives, acks included.
    net.faults = silentPeer(silentPeer(FAULTS.none, 'p1'), 'p3')
    const t0 = performance.now()
    await peers[2].inst.leave()
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(LEAVE_HANDOVER_MS - 50)
    expect(took).toBeLessThan(1500) // the session's own cap on leave() (swarm-session.ts)
    for (const p of peers) p.stop.abort(), p.inst.dispose()
  })

  it('a poisoned hand-over is rejected and never folded', async () => {
    const cfg = config('dpsgd', { topology: 'ring' })
    const net = new MemoryNetwork({ seed: 7 })
    const peers = await startAll(net, ring, cfg)
    const bad = peers[2]
    const realSend = bad.mesh.send.bind(bad.mesh)
    bad.mesh.send = (to, msg, signal) => realSend(to, msg.kind === 'leave/model' ? { ...msg, data: Float32Array.of(NaN, 0, 0) } : msg, signal)
    await bad.inst.leave()
    net.leave(bad.id)
    bad.inst.dispose()
    const stay = peers.filter((p) => p !== bad)
    await Promise.all(stay.map((p) => p.inst.step()))
    expect(peers[1].mesh.stats().rejected[bad.id]).toBe(1)
    // Abrupt-leave mean: nothing of the poisoned model got in.
    const m = mean(await Promise.all(stay.map((p) => p.inst.evalParams())))
    expect(m[0]).toBeCloseTo(2, 5)
    for (const p of stay) p.stop.abort(), p.inst.dispose()
  })
})
