import { describe, expect, it } from 'vitest'
import type { RoomConfig } from '../config'
import { maxAbsDiff, sqDist } from '../math/vector'
import { FAULTS } from '../testing/faults'
import { configWith, flatShard as flat, startPeer, startPeers, type LogLine, type TestPeer } from '../testing/harness'
import { LsqCompute, makeLsqProblem } from '../testing/lsq-compute'
import { MemoryNetwork } from '../testing/memory-mesh'
import { sleep } from '../transport'
import { adPsgd, initiates } from './ad-psgd'

/**
 * Deadlines are long unless a test needs one to fire: departures abort waits through the roster,
 * so a loaded CI machine (timers late by 100s of ms) cannot turn a healthy exchange into an abort.
 */
const config = configWith({ algorithm: 'ad-psgd', topology: 'ring', stepDeadlineMs: 5000, lr: 0.05, momentum: 0 })

type Peer = TestPeer<LsqCompute>
const start = (net: MemoryNetwork, id: string, compute: LsqCompute, cfg: RoomConfig, logs: LogLine[]) => startPeer(adPsgd, net, id, compute, cfg, logs)
const startAll = (net: MemoryNetwork, computes: LsqCompute[], cfg: RoomConfig, logs: LogLine[]) => startPeers(adPsgd, net, computes, cfg, logs)

const sumOf = (xs: Float32Array[]) => xs.reduce((s, x) => s + x.reduce((a, v) => a + v, 0), 0)

/**
 * Waits until no exchange is in flight (every exchange-start has its exchange-end), so a sum or
 * spread is read between exchanges rather than after a fixed sleep that a loaded machine outruns.
 */
async function quiesce(logs: LogLine[], ms = 3000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    const open = new Map<string, number>()
    for (const l of logs) {
      if (l.event === 'ad-psgd/exchange-start') open.set(l.peer, (open.get(l.peer) ?? 0) + 1)
      else if (l.event === 'ad-psgd/exchange-end') open.set(l.peer, (open.get(l.peer) ?? 0) - 1)
    }
    if ([...open.values()].every((v) => v === 0) || Date.now() > end) return
    await sleep(10)
  }
}

/** Polls `logs` until a line satisfies `pred` (or `ms` pass); returns that line. */
async function waitForLog(logs: LogLine[], pred: (l: LogLine) => boolean, ms = 3000): Promise<LogLine | undefined> {
  const end = Date.now() + ms
  for (;;) {
    const hit = logs.find(pred)
    if (hit || Date.now() > end) return hit
    await sleep(5)
  }
}

/**
 * Whether `peer`'s first initiated exchange averaged x: step() does not wait for the exchange it
 * starts (it runs beside the gradient and the steps after it), so tests read its end from the log.
 */
async function initiatedOk(logs: LogLine[], peer: string, ms = 3000): Promise<boolean | undefined> {
  const end = await waitForLog(logs, (l) => l.peer === peer && l.event === 'ad-psgd/exchange-end' && l.detail?.role === 'active', ms)
  return end?.detail?.ok as boolean | undefined
}

function meanOf(xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs[0].length)
  for (const x of xs) for (let i = 0; i < x.length; i++) out[i] += x[i] / xs.length
  return out
}

describe('AD-PSGD roles', () => {
  it('is bipartite on an even ring and breaks the odd edge of an odd ring by index', () => {
    const even = ['a', 'b', 'c', 'd']
    expect(initiates(even, 'a', 'b')).toBe(true)
    expect(initiates(even, 'b', 'a')).toBe(false)
    expect(initiates(even, 'c', 'b')).toBe(true)
    expect(initiates(even, 'a', 'd')).toBe(true)
    const odd = ['a', 'b', 'c', 'd', 'e']
    // Edge (e, a): both even indices; the lower index (a) initiates, e serves it.
    expect(initiates(odd, 'a', 'e')).toBe(true)
    expect(initiates(odd, 'e', 'a')).toBe(false)
    expect(initiates(odd, 'e', 'd')).toBe(true)
  })
})

describe('AD-PSGD exchange', () => {
  it('a pairwise exchange leaves both at (x_i + x_j)/2 and preserves the sum exactly', async () => {
    const net = new MemoryNetwork({ seed: 1 })
    const logs: LogLine[] = []
    // Integer-valued models: every midpoint is exact in fp32, so "exact" means bit-exact.
    const a = Float32Array.of(1, 2, 3, 4)
    const b = Float32Array.of(5, 6, 7, 9)
    const [p0, p1] = await startAll(net, [new LsqCompute(flat(4), { init: a }), new LsqCompute(flat(4), { init: b })], config(), logs)
    const r = await p0.inst.step() // p0 (index 0) is the active side of edge (p0, p1)
    expect(r.step).toBe(1)
    expect(await initiatedOk(logs, 'p0')).toBe(true)
    await sleep(10) // lets p1's server apply the exchange message
    const x0 = await p0.inst.evalParams()
    const x1 = await p1.inst.evalParams()
    expect([...x0]).toEqual([3, 4, 5, 6.5])
    expect([...x1]).toEqual([3, 4, 5, 6.5])
    expect(sumOf([x0, x1])).toBe(sumOf([a, b]))
    for (const p of [p0, p1]) p.inst.dispose()
  })

  it('keeps the sum of models under concurrent gossip on an odd ring with latency', async () => {
    const net = new MemoryNetwork({ seed: 2, faults: FAULTS.lan })
    const logs: LogLine[] = []
    const inits = [0, 1, 2, 3, 4].map((i) => Float32Array.of(8 * i, -4 * i, 16, 2 * i * i))
    const before = sumOf(inits)
    // 5 ms of "gradient" per step: step() does not wait for its exchange, so with instant
    // gradients 40 steps would be over before most exchanges are.
    const peers = await startAll(net, inits.map((x) => new LsqCompute(flat(4), { init: x, delayMs: 5 })), config(), logs)
    await Promise.all(peers.map(async (p) => { for (let k = 0; k < 40; k++) await p.inst.step() }))
    await sleep(30)
    await quiesce(logs)
    const xs = await Promise.all(peers.map((p) => p.inst.evalParams()))
    expect(sumOf(xs)).toBeCloseTo(before, 3)
    // Gossip contracts the spread: the models moved towards each other. (Random partners: after
    // 25 steps the ratio ranged 0.06–0.78 under a loaded parallel run; after 40, 0.004–0.1.)
    const m0 = meanOf(inits)
    const spread = (v: Float32Array[]) => v.reduce((s, x) => s + sqDist(x, m0), 0)
    expect(spread(xs)).toBeLessThan(0.5 * spread(inits))
    for (const p of peers) p.inst.dispose()
  })

  it('never puts a peer in two exchanges at once (odd ring, clique, latency)', async () => {
    for (const topology of ['ring', 'clique'] as const) {
      const net = new MemoryNetwork({ seed: 3, faults: FAULTS.reorder })
      const logs: LogLine[] = []
      const peers = await startAll(net, [0, 1, 2, 3, 4].map((i) => new LsqCompute(flat(3), { init: Float32Array.of(i, 2 * i, -i) })),
        config({ topology }), logs)
      await Promise.all(peers.map(async (p) => { for (let k = 0; k < 10; k++) await p.inst.step() }))
      await sleep(30)
      const open = new Map<string, number>()
      let completed = 0
      for (const l of logs) {
        if (l.event === 'ad-psgd/exchange-start') {
          open.set(l.peer, (open.get(l.peer) ?? 0) + 1)
          expect(open.get(l.peer)).toBe(1)
        } else if (l.event === 'ad-psgd/exchange-end') {
          open.set(l.peer, (open.get(l.peer) ?? 0) - 1)
          if (l.detail?.ok) completed++
        }
      }
      expect(completed).toBeGreaterThan(0)
      for (const p of peers) p.inst.dispose()
    }
  })
})

describe('AD-PSGD aborted exchanges lose nothing', () => {
  // Latency 20 ms: request reaches p1 at ~20, accept reaches p0 at ~40, exchange would reach p1 at ~60.
  const slow = { ...FAULTS.none, latencyMs: [20, 20] as const }

  it('passive partner leaves after accepting: both models unchanged', async () => {
    const net = new MemoryNetwork({ seed: 4, faults: slow })
    const logs: LogLine[] = []
    const a = Float32Array.of(1, 2, 3)
    const b = Float32Array.of(7, 8, 9)
    const [p0, p1] = await startAll(net, [new LsqCompute(flat(3), { init: a }), new LsqCompute(flat(3), { init: b })], config({ stepDeadlineMs: 150 }), logs)
    const step = p0.inst.step()
    await sleep(30) // p1 has accepted (snapshot sent), p0 has not received it yet
    expect(logs.some((l) => l.peer === 'p1' && l.event === 'ad-psgd/exchange-start')).toBe(true)
    net.leave('p1')
    await step
    expect(await initiatedOk(logs, 'p0')).toBe(false)
    await sleep(350) // p1's serve deadline (2 × 150 ms) expires
    expect([...(await p0.inst.evalParams())]).toEqual([...a])
    expect([...(await p1.compute.readParams())]).toEqual([...b])
    expect(logs.some((l) => l.peer === 'p1' && l.event === 'ad-psgd/exchange-end' && l.detail?.ok === false)).toBe(true)
    for (const p of [p0, p1]) p.inst.dispose()
  })

  it('active partner leaves before sending its model: the server aborts at once, unchanged', async () => {
    const net = new MemoryNetwork({ seed: 5, faults: slow })
    const logs: LogLine[] = []
    const a = Float32Array.of(1, 2, 3)
    const b = Float32Array.of(7, 8, 9)
    const [p0, p1] = await startAll(net, [new LsqCompute(flat(3), { init: a }), new LsqCompute(flat(3), { init: b })], config({ stepDeadlineMs: 5000 }), logs)
    const step = p0.inst.step()
    await sleep(30)
    net.leave('p0')
    // The server's wait ends on the roster change, far before its 10 s deadline.
    await sleep(10)
    expect(logs.some((l) => l.peer === 'p1' && l.event === 'ad-psgd/exchange-end' && l.detail?.ok === false)).toBe(true)
    expect([...(await p1.inst.evalParams())]).toEqual([...b])
    p0.inst.dispose() // the leaving tab shuts down; its pending wait ends with it
    await step
    expect([...(await p0.compute.readParams())]).toEqual([...a])
    p1.inst.dispose()
  })
})

describe('AD-PSGD churn', () => {
  it('a peer leaving mid-run never blocks the others; a joiner is bootstrapped and ends near them', async () => {
    const n = 5
    const d = 6
    const prob = makeLsqProblem({ n: n + 1, d, m: 16, seed: 7, spread: 1 })
    const net = new MemoryNetwork({ seed: 8, faults: FAULTS.lan })
    const logs: LogLine[] = []
    const cfg = config({ lr: 0.02 })
    const peers = await startAll(net, prob.shards.slice(0, n).map((s) => new LsqCompute(s, { batchSize: 4 })), cfg, logs)
    const leaver = peers[2]
    const alive = peers.filter((p) => p !== leaver)
    const steps = new Map<string, number>()
    const loop = (p: Peer, k: number) => (async () => {
      for (let i = 0; i < k && !p.stop.signal.aborted; i++) {
        await p.inst.step()
        steps.set(p.id, (steps.get(p.id) ?? 0) + 1)
      }
    })()
    const runs = alive.map((p) => loop(p, 40))
    const leaverRun = loop(leaver, 1000)
    await sleep(40)
    net.leave(leaver.id) // ungraceful: mid-exchange with whoever
    leaver.stop.abort()
    leaver.inst.dispose()
    await leaverRun
    await Promise.all(runs)
    for (const p of alive) expect(steps.get(p.id)).toBe(40)
    // A joiner (zero init) bootstraps from its ring neighbours in the new roster [p0 p1 p3 p4 p9]:
    // p4 and p0, idle once their last exchanges are complete on both sides, so its model is
    // exactly their average (docs/algorithms.md "AD-PSGD under churn").
    await quiesce(logs)
    const x0 = await alive[0].inst.evalParams()
    const x4 = await alive[3].inst.evalParams()
    const joiner = await start(net, 'p9', new LsqCompute(prob.shards[n], { batchSize: 4 }), cfg, logs)
    const boot = await joiner.inst.evalParams()
    expect(logs.find((l) => l.peer === 'p9' && l.event === 'ad-psgd/bootstrap')?.detail?.donors).toBe(2)
    expect(maxAbsDiff(boot, x0.map((v, i) => (v + x4[i]) / 2))).toBeLessThan(1e-6)
    await Promise.all([...alive.map((p) => loop(p, 60)), loop(joiner, 60)])
    const xs = await Promise.all(alive.map((p) => p.inst.evalParams()))
    const m = meanOf(xs)
    const spread = Math.max(...xs.map((x) => sqDist(x, m)))
    // Gossip partners are random and exchanges interleave with the event loop, so how close the
    // joiner ends varies run to run (a loaded machine once gave 7× the spread after 30 steps):
    // 60 steps and a bound of 10× the others' own spread keep this about "near them", not about
    // one lucky interleaving.
    expect(sqDist(await joiner.inst.evalParams(), m)).toBeLessThan(Math.max(10 * spread, 1e-3))
    for (const p of [...alive, joiner]) p.inst.dispose()
  })
})

describe('AD-PSGD: a roster change elsewhere never half-applies an exchange', () => {
  // 20 ms per hop: request reaches B at ~20, accept reaches A at ~40, exchange reaches B at ~60.
  const slow = { ...FAULTS.none, latencyMs: [20, 20] as const }

  /** For every exchange id: the initiator applied it iff the passive side did. */
  function expectBothOrNeither(logs: LogLine[], initiator: string, passive: string): number {
    const ends = (peer: string, partner: string, role: string) => new Map(logs
      .filter((l) => l.peer === peer && l.event === 'ad-psgd/exchange-end' && l.detail?.role === role && l.detail?.partner === partner)
      .map((l) => [l.detail!.id as number, l.detail!.ok as boolean]))
    const a = ends(initiator, passive, 'active')
    const b = ends(passive, initiator, 'passive')
    // An id only one side logged is one the other never served (busy, or the request was lost):
    // it must then have failed there too.
    for (const id of new Set([...a.keys(), ...b.keys()])) expect({ id, ok: b.get(id) ?? false }).toEqual({ id, ok: a.get(id) ?? false })
    return [...a.values()].filter(Boolean).length
  }

  /**
   * Runs one step of `initiator` and fires `change` right after `trigger`'s first send of `kind`
   * (the message is then in flight, stamped with the old epoch).
   */
  async function exchangeWithChange(logs: LogLine[], initiator: Peer, trigger: Peer, kind: string, change: () => void) {
    const realSend = trigger.mesh.send.bind(trigger.mesh)
    let fired = false
    trigger.mesh.send = async (to, msg, signal) => {
      await realSend(to, msg, signal)
      if (msg.kind === kind && !fired) {
        fired = true
        change()
      }
    }
    await initiator.inst.step()
    const ok = await initiatedOk(logs, initiator.id)
    expect(fired).toBe(true)
    return { communicated: ok }
  }

  it('a third peer joins while the exchange message is in flight: both apply, the pair sum is exact', async () => {
    const net = new MemoryNetwork({ seed: 41, faults: slow })
    const logs: LogLine[] = []
    const a = Float32Array.of(1, 2, 3, 4)
    const b = Float32Array.of(5, 6, 7, 9)
    const [p0, p1] = await startAll(net, [new LsqCompute(flat(4), { init: a }), new LsqCompute(flat(4), { init: b })], config(), logs)
    const epoch = net.membership().epoch
    const r = await exchangeWithChange(logs, p0, p0, 'ad-psgd/exchange', () => net.join('p2'))
    expect(r.communicated).toBe(true)
    expect(net.membership().epoch).toBe(epoch + 1)
    await quiesce(logs)
    const x0 = await p0.inst.evalParams()
    const x1 = await p1.inst.evalParams()
    // Integer models: the midpoint is exact in fp32, so the sum is preserved bit for bit.
    expect([...x0]).toEqual([3, 4, 5, 6.5])
    expect([...x1]).toEqual([3, 4, 5, 6.5])
    expect(sumOf([x0, x1])).toBe(sumOf([a, b]))
    expect(expectBothOrNeither(logs, 'p0', 'p1')).toBe(1)
    // It took a re-send in the new epoch (the first copy was dropped as stale), then B's `done`.
    const confirmed = await waitForLog(logs, (l) => l.peer === 'p0' && l.event === 'ad-psgd/exchange-confirmed')
    expect(confirmed?.detail?.resends).toBe(1)
    for (const p of [p0, p1]) p.inst.dispose()
  })

  it('a third peer leaves while the exchange message is in flight: both apply, the pair sum is exact', async () => {
    const net = new MemoryNetwork({ seed: 42, faults: slow })
    const logs: LogLine[] = []
    // Roster [px, p0, p1]: on this odd ring p1 initiates only towards p0 (indices 2 → 1), so the
    // exchange is p1 ⇄ p0 whatever the seed; px (idle) leaves mid-exchange.
    for (const id of ['px', 'p0', 'p1']) net.join(id)
    const a = Float32Array.of(1, 2, 3, 4)
    const b = Float32Array.of(5, 6, 7, 9)
    const [px, p0, p1] = await Promise.all([Float32Array.of(100, 100, 100, 100), a, b].map((init, i) =>
      start(net, ['px', 'p0', 'p1'][i], new LsqCompute(flat(4), { init }), config(), logs)))
    const r = await exchangeWithChange(logs, p1, p1, 'ad-psgd/exchange', () => {
      px.inst.dispose()
      net.leave('px')
    })
    expect(r.communicated).toBe(true)
    expect(net.membership().peers).toEqual(['p0', 'p1'])
    await quiesce(logs)
    const x0 = await p0.inst.evalParams()
    const x1 = await p1.inst.evalParams()
    expect([...x0]).toEqual([3, 4, 5, 6.5])
    expect([...x1]).toEqual([3, 4, 5, 6.5])
    expect(sumOf([x0, x1])).toBe(sumOf([a, b]))
    expect(expectBothOrNeither(logs, 'p1', 'p0')).toBe(1)
    for (const p of [p0, p1]) p.inst.dispose()
  })

  it('a roster change before the commit point (accept in flight): neither applies, the server is released at once', async () => {
    const net = new MemoryNetwork({ seed: 43, faults: slow })
    const logs: LogLine[] = []
    const a = Float32Array.of(1, 2, 3)
    const b = Float32Array.of(7, 8, 9)
    // Deadline 5 s: the passive side must end through `cancel`, far sooner than its 10 s wait.
    const [p0, p1] = await startAll(net, [new LsqCompute(flat(3), { init: a }), new LsqCompute(flat(3), { init: b })], config(), logs)
    const t0 = performance.now()
    const r = await exchangeWithChange(logs, p0, p1, 'ad-psgd/accept', () => net.join('p2'))
    expect(r.communicated).toBe(false)
    await quiesce(logs)
    expect(performance.now() - t0).toBeLessThan(2000)
    expect([...(await p0.inst.evalParams())]).toEqual([...a])
    expect([...(await p1.inst.evalParams())]).toEqual([...b])
    expect(expectBothOrNeither(logs, 'p0', 'p1')).toBe(0)
    expect(logs.some((l) => l.peer === 'p1' && l.event === 'ad-psgd/exchange-abort' && /cancelled/.test(String(l.detail?.reason)))).toBe(true)
    for (const p of [p0, p1]) p.inst.dispose()
  })

  it('keeps the sum of models exact under gossip while peers join and leave around the pairs', async () => {
    const net = new MemoryNetwork({ seed: 44, faults: FAULTS.lan })
    const logs: LogLine[] = []
    // Integer models on a 4-ring: every exchange is exact, so any half-applied one shows.
    const inits = [0, 1, 2, 3].map((i) => Float32Array.of(8 * i, -4 * i, 16, 2 * i * i))
    // Steps take 5 ms (as a gradient would), so the run lasts long enough for the churn.
    const peers = await startAll(net, inits.map((x) => new LsqCompute(flat(4), { init: x, delayMs: 5 })), config(), logs)
    let churn = 0
    let stepping = true
    const churner = (async () => {
      // Bare tabs join and leave while the four gossip (one chosen as a partner only aborts that
      // exchange when it leaves: it never answers).
      while (stepping) {
        await sleep(7)
        const id = `x${churn++}`
        net.join(id)
        await sleep(5)
        net.leave(id)
      }
    })()
    await Promise.all(peers.map(async (p) => { for (let k = 0; k < 25; k++) await p.inst.step() }))
    stepping = false
    await churner
    await quiesce(logs)
    const xs = await Promise.all(peers.map((p) => p.inst.evalParams()))
    expect(sumOf(xs)).toBe(sumOf(inits))
    const completed = logs.filter((l) => l.event === 'ad-psgd/exchange-end' && l.detail?.role === 'active' && l.detail?.ok).length
    expect(completed).toBeGreaterThan(0)
    expect(churn).toBeGreaterThan(3)
    // Every exchange either completed on both sides or on neither.
    for (const p of peers) for (const q of peers) if (p !== q) expectBothOrNeither(logs, p.id, q.id)
    for (const p of peers) p.inst.dispose()
  })
})
