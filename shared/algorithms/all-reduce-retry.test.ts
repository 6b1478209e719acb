import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../config'
import { FAULTS } from '../testing/faults'
import { LsqCompute } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { allReduceWithRetry } from './common'
import type { AlgorithmContext } from './types'

describe('allReduceWithRetry', () => {
  it('a same-epoch retry completes after a first attempt that timed out half-way (consumed chunks are kept)', async () => {
    const r = parseRoomConfig({ algorithm: 'local-sgd', stepDeadlineMs: 400 })
    if (!r.ok) throw new Error(r.error)
    const net = new MemoryNetwork({ seed: 21, faults: FAULTS.lan })
    const ids = ['p0', 'p1', 'p2', 'p3']
    for (const id of ids) net.join(id)
    const d = 8
    // p3 starts once p0's first attempt has timed out (an event, not a guess at how long that
    // takes on a loaded machine): the others' first attempt consumed some chunks, then gave up.
    let firstTimeout!: () => void
    const firstTimedOut = new Promise<void>((resolve) => (firstTimeout = resolve))
    const ctxs: AlgorithmContext[] = ids.map((id) => ({
      mesh: net.mesh(id)!, compute: new LsqCompute({ m: 1, d, A: new Float64Array(d), b: new Float64Array(1) }),
      config: r.config, signal: new AbortController().signal,
      log: (e: string) => { if (id === 'p0' && e === 'test/retry') firstTimeout() },
      now: () => performance.now(),
    }))
    const input = (i: number) => Float32Array.from({ length: d }, (_, k) => i * 10 + k)
    const results = await Promise.all(ctxs.map(async (ctx, i) => {
      if (i === 3) await firstTimedOut
      return allReduceWithRetry(ctx, 'test', 7, () => new Float32Array(input(i)))
    }))
    const want = Float32Array.from({ length: d }, (_, k) => [0, 1, 2, 3].reduce((s, i) => s + input(i)[k], 0))
    for (const res of results) {
      expect(res).not.toBeNull()
      expect([...res!.sum.subarray(0, d)]).toEqual([...want])
      expect(res!.members).toBe(4)
    }
  })

  it('a roster that changes again and again does not use up the attempts (a swarm forming)', async () => {
    const r = parseRoomConfig({ algorithm: 'local-sgd', stepDeadlineMs: 1000 })
    if (!r.ok) throw new Error(r.error)
    const net = new MemoryNetwork({ seed: 22, faults: FAULTS.lan })
    const ids = ['p0', 'p1', 'p2']
    // p3 is in the roster but never takes part (still loading), so no attempt can complete while
    // it is; p4 arriving and leaving makes a new epoch every 10 ms on top.
    for (const id of [...ids, 'p3']) net.join(id)
    const d = 4
    const logs: string[] = []
    const ctxs: AlgorithmContext[] = ids.map((id) => ({
      mesh: net.mesh(id)!, compute: new LsqCompute({ m: 1, d, A: new Float64Array(d), b: new Float64Array(1) }),
      config: r.config, signal: new AbortController().signal, log: (e) => void logs.push(e), now: () => performance.now(),
    }))
    const input = (i: number) => Float32Array.from({ length: d }, (_, k) => i + k)
    const running = Promise.all(ctxs.map((ctx, i) => allReduceWithRetry(ctx, 'test', 3, () => new Float32Array(input(i)))))
    for (let k = 0; k < 4; k++) {
      await sleep(10)
      net.join('p4')
      await sleep(10)
      net.leave('p4')
    }
    net.leave('p3')
    const results = await running
    // Nine restarts, each cut short by a new epoch: more than the 3 attempts, none a timeout.
    expect(logs.filter((e) => e === 'test/retry').length).toBeGreaterThan(3)
    const want = Float32Array.from({ length: d }, (_, k) => [0, 1, 2].reduce((s, i) => s + input(i)[k], 0))
    for (const res of results) {
      expect(res).not.toBeNull()
      expect([...res!.sum]).toEqual([...want])
      expect(res!.members).toBe(3)
    }
  })
})
