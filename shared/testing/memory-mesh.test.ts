import { describe, expect, it } from 'vitest'
import { deadline, isDeadline } from '../transport'
import { FAULTS, silentPeer } from './faults'
import { HEADER_BYTES, MemoryNetwork, memoryMeshHarness, type MemoryMesh } from './memory-mesh'
import { describeMeshCompliance } from './mesh-compliance'

describeMeshCompliance('MemoryMesh', async (n) => memoryMeshHarness({ seed: 3, faults: FAULTS.lan }, n))

describe('MemoryNetwork', () => {
  it('counts 4 bytes per float plus a header on both ends', async () => {
    const net = new MemoryNetwork()
    const a = net.join()
    const b = net.join()
    await a.send(b.self, { kind: 'k', round: 0, data: new Float32Array(100) })
    await b.receive({ kind: 'k' }, deadline('t', 100))
    expect(a.stats().bytesSent).toBe(400 + HEADER_BYTES)
    expect(b.stats().bytesReceived).toBe(400 + HEADER_BYTES)
    expect(a.stats().perLink[b.self].bytesSent).toBe(400 + HEADER_BYTES)
  })

  it('re-elects the PS as the first peer when the PS leaves', () => {
    const net = new MemoryNetwork()
    const [a, b, c] = [net.join(), net.join(), net.join()]
    expect(a.membership().roles.ps).toBe(a.self)
    net.leave(a.self)
    expect(b.membership().roles.ps).toBe(b.self)
    expect(c.membership().peers).toEqual([b.self, c.self])
  })

  it('drops a message that was in flight across an epoch bump', async () => {
    const net = new MemoryNetwork({ faults: { ...FAULTS.none, latencyMs: [5, 5] } })
    const [a, b] = [net.join(), net.join()]
    await a.send(b.self, { kind: 'k', round: 0 })
    net.join() // epoch bump while the message travels
    await expect(b.receive({ kind: 'k' }, deadline('t', 30))).rejects.toSatisfy(isDeadline)
  })

  it('a silent peer sends nothing; a dropRate of 1 loses everything; sends from a left peer reject', async () => {
    const net = new MemoryNetwork()
    const [a, b] = [net.join(), net.join()]
    net.faults = silentPeer(FAULTS.none, a.self)
    await a.send(b.self, { kind: 'k', round: 0 })
    await expect(b.receive({ kind: 'k' }, deadline('t', 20))).rejects.toSatisfy(isDeadline)
    net.faults = { ...FAULTS.none, dropRate: 1 }
    await b.send(a.self, { kind: 'k', round: 0 })
    await expect(a.receive({ kind: 'k' }, deadline('t', 20))).rejects.toSatisfy(isDeadline)
    net.leave(a.self)
    await expect(a.send(b.self, { kind: 'k', round: 1 })).rejects.toMatchObject({ name: 'PeerUnavailableError' })
  })

  it('reordering delivers every message exactly once, some out of order', async () => {
    const order = async (seed: number) => {
      const net = new MemoryNetwork({ seed, faults: FAULTS.reorder })
      const [a, b] = [net.join(), net.join()]
      for (let r = 0; r < 20; r++) await a.send(b.self, { kind: 'k', round: r })
      const got: number[] = []
      for (let r = 0; r < 20; r++) got.push((await b.receive({ kind: 'k' }, deadline('t', 1000))).round)
      return got
    }
    const x = await order(5)
    expect(x).not.toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect([...x].sort((p, q) => p - q)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })
})
