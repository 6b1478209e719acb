import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import { JoinRejectedError, reportSchema, type Credit, type MembershipAnnouncement, type PeerCommand } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { LsqCompute, makeLsqProblem } from '../../shared/testing/lsq-compute'
import { MemoryNetwork } from '../../shared/testing/memory-mesh'
import { CLOCK_SLACK_STEPS, DeadlineError, type Membership, type Unsubscribe } from '../../shared/transport'
import { RoomRegistry } from '../../signaling-server/rooms'
import { withSessionControls } from './platform'
import { describeEvent, SwarmSession, type SessionMesh, type SessionPlatform, type SignalingPort } from './swarm-session'
import { formatLogLine, say } from './wording'

/**
 * The session's round order against the real room registry (the server's pure state) and the
 * in-memory mesh: what a tab does between "join" and "train", and what it does when it breaks.
 * No sockets, no tfjs: least-squares compute, so every step takes microseconds.
 */

const ROOM = 'lab'

class FakeServer {
  readonly registry = new RoomRegistry()
  readonly net = new MemoryNetwork({ seed: 1 })
  private readonly membership = new Map<string, Set<(m: MembershipAnnouncement) => void>>()
  private readonly removed = new Map<string, (why: 'evicted' | 'kicked') => void>()
  private readonly commands = new Map<string, (c: PeerCommand) => void>()
  /** As handlers.ts sendCredit: each report answered with the reporter's standing. */
  private readonly credits = new Map<string, (c: Credit) => void>()
  /** Per port (keyed by its subscriber set, which survives a new id): the reconnect callback. */
  private readonly reconnected = new Map<object, () => void>()
  /** Every epoch announced, in order (to see that a change happened at all). */
  readonly epochs: number[] = []
  private next = 0

  constructor() {
    const r = this.registry.create({
      name: ROOM, tokenHash: null,
      config: cfg(),
    })
    if (!r.ok) throw new Error(r.message)
  }

  broadcast(): void {
    const m = this.registry.membership(this.registry.get(ROOM)!)
    this.epochs.push(m.epoch)
    for (const set of this.membership.values()) for (const cb of set) cb(m)
  }

  newRun(): void {
    this.registry.startNewRun(this.registry.get(ROOM)!)
    this.broadcast()
  }

  evict(id: string): void {
    const room = this.registry.get(ROOM)!
    this.registry.evict(room, id, { reason: 'test eviction', reporters: room.roster.filter((p) => p !== id), basis: 'neighbours' })
    this.net.leave(id)
    this.broadcast()
    this.removed.get(id)?.('evicted')
  }

  /** Peers whose 'ready' the server holds back until releaseReady() (a slow server round trip). */
  readonly holdReady = new Set<string>()
  private readonly heldReady = new Set<string>()

  releaseReady(id: string): void {
    this.holdReady.delete(id)
    if (this.heldReady.delete(id) && this.registry.ready(id).ok) this.broadcast()
  }

  /** Lets every held 'ready' through with one announcement: tabs that come back together. */
  releaseAllReady(): void {
    this.holdReady.clear()
    for (const id of this.heldReady) this.registry.ready(id)
    this.heldReady.clear()
    this.broadcast()
  }

  command(id: string, c: PeerCommand): void {
    this.commands.get(id)?.(c)
  }

  /** Joins that go unanswered (the port's join deadline passes), as a busy server's might. */
  unansweredJoins = 0

  port(): SignalingPort {
    let id = `s${this.next++}`
    const subs = new Set<(m: MembershipAnnouncement) => void>()
    this.membership.set(id, subs)
    return {
      join: async () => {
        if (this.unansweredJoins > 0) {
          this.unansweredJoins--
          throw new DeadlineError('signaling.join')
        }
        const r = this.registry.join(ROOM, { id, role: 'volunteer' })
        if (!r.ok) throw new JoinRejectedError(r.code, r.message, r.retryAfterMs ?? null)
        return { self: id, membership: this.registry.membership(r.room) }
      },
      ready: () => {
        if (this.holdReady.has(id)) return void this.heldReady.add(id)
        const r = this.registry.ready(id)
        if (r.ok && r.changed) this.broadcast()
      },
      onMembership: (cb): Unsubscribe => (subs.add(cb), () => subs.delete(cb)),
      onCommand: (cb): Unsubscribe => (this.commands.set(id, cb), () => this.commands.delete(id)),
      onRemoved: (cb): Unsubscribe => (this.removed.set(id, cb), () => this.removed.delete(id)),
      onCredit: (cb): Unsubscribe => (this.credits.set(id, cb), () => this.credits.delete(id)),
      onReconnect: (cb): Unsubscribe => (this.reconnected.set(subs, cb), () => void this.reconnected.delete(subs)),
      away: (reason) => {
        const r = this.registry.away(id, reason)
        if (r.ok && r.changed) this.broadcast()
      },
      // As socket.io does: the server sees a disconnect, the client reconnects under a new id.
      dropConnection: () => {
        this.net.leave(id)
        if (this.registry.leave(id)?.changed) this.broadcast()
        const [cmd, rm] = [this.commands.get(id), this.removed.get(id)]
        for (const m of [this.membership, this.commands, this.removed]) m.delete(id)
        id = `s${this.next++}`
        this.membership.set(id, subs)
        if (cmd) this.commands.set(id, cmd)
        if (rm) this.removed.set(id, rm)
        setTimeout(() => this.reconnected.get(subs)?.(), 50)
      },
      // Through the real schema, as the server's handler does.
      report: (r) => {
        // As handlers.ts: a report that made the run diverged paused the room; announce it.
        const out = this.registry.report(id, reportSchema.parse(r))
        if (out?.diverged) this.broadcast()
        if (out) this.credits.get(id)?.({ v: 1, ...this.registry.standing(out.room, id) })
      },
      checkpoint: () => {},
      close: () => {
        this.net.leave(id)
        if (this.registry.leave(id)?.changed) this.broadcast()
      },
    }
  }
}

function cfg() {
  const r = parseRoomConfig({ algorithm: 'dpsgd', topology: 'ring', lr: 0.05, momentum: 0, stepDeadlineMs: 300, schedule: { kind: 'constant', warmupSteps: 0 } })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

const problem = makeLsqProblem({ n: 4, d: 8, m: 16, seed: 2 })

/**
 * The in-memory mesh carries the messages; its membership follows the room's announcements
 * (SwarmSession → updateMembership), as the WebRTC mesh follows the signaling server's. The
 * memory network's own roster only knows joins and leaves, not a tab stepping out.
 */
function rosterMesh(inner: SessionMesh, initial: Membership): SessionMesh {
  let current = initial
  const listeners = new Set<(m: Membership) => void>()
  return {
    self: inner.self,
    clock: inner.clock,
    membership: () => current,
    onMembership: (cb) => (listeners.add(cb), () => void listeners.delete(cb)),
    send: (to, msg, signal) => inner.send(to, msg, signal),
    receive: (f, signal) => inner.receive(f, signal),
    discard: (f) => inner.discard(f),
    want: (p) => inner.want(p),
    reportSuspect: (p, r) => inner.reportSuspect(p, r),
    rejectFrom: (p, r) => inner.rejectFrom?.(p, r),
    stats: () => inner.stats(),
    setLatency: (ms) => inner.setLatency(ms),
    close: () => inner.close(),
    updateMembership: (m) => {
      if (m.epoch <= current.epoch) return
      current = { epoch: m.epoch, peers: [...m.peers], roles: { ps: m.roles.ps } }
      for (const cb of [...listeners]) cb(current)
    },
  }
}

/** A room checkpoint of the least-squares model (rooms.ts checks real models; this one is not). */
function putCheckpoint(server: FakeServer, step: number, params: Float32Array): void {
  const room = server.registry.get(ROOM)!
  room.checkpoint = { run: room.run, step, schemaHash: `lsq:${problem.shards[0].d}`, params: new Uint8Array(params.buffer.slice(0)), savedAt: Date.now() }
}

function session(server: FakeServer, opts: { prepared?: Promise<void>; failAfter?: number; evalMs?: number } = {}): SwarmSession {
  const signaling = server.port()
  const platform: SessionPlatform = {
    agent: 'node',
    serverUrl: 'memory://',
    signaling,
    selectBackend: async () => ({ backend: 'cpu', reason: 'test' }),
    prepare: async (_config, shard) => {
      await opts.prepared
      const compute = new LsqCompute(problem.shards[shard.index % problem.shards.length], { batchSize: 4 })
      let grads = 0
      if (opts.failAfter !== undefined) {
        const real = compute.gradient.bind(compute)
        compute.gradient = async () => {
          if (++grads > opts.failAfter!) throw new Error('device lost')
          return real()
        }
      }
      const evaluate = async () => {
        if (opts.evalMs) await new Promise((r) => setTimeout(r, opts.evalMs))
        return { loss: 0, accuracy: 0.5 }
      }
      return { compute, train: {} as Dataset, evaluate, dispose: () => {} }
    },
    createMesh: ({ self, membership }) => rosterMesh(withSessionControls(server.net.join(self), () => server.net.leave(self)), membership),
    // What browser-session.ts reads over HTTP: the room's checkpoint and the roster's reports.
    fetchCheckpoint: async () => {
      const cp = server.registry.get(ROOM)!.checkpoint
      return cp ? { step: cp.step, schemaHash: cp.schemaHash, params: new Float32Array(cp.params.buffer.slice(0)) } : null
    },
    fetchRoomProgress: async () => {
      const view = server.registry.view(server.registry.get(ROOM)!)
      return { checkpointStep: view.checkpointStep, peers: view.peers.map((p) => ({ id: p.id, globalStep: p.globalStep })) }
    },
  }
  return new SwarmSession(platform, { room: ROOM })
}

async function until<T>(what: string, fn: () => T | false | undefined | null, ms = 5000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const roster = (s: FakeServer) => s.registry.get(ROOM)!.roster

/** Two started sessions on one fake server, the second one in the roster: most session tests begin here. */
async function twoInRoster() {
  const server = new FakeServer()
  const a = session(server)
  const b = session(server)
  await a.start()
  await b.start()
  const bId = await until('b in the roster', () => roster(server).includes(b.snapshot().self ?? '') && b.snapshot().self)
  return { server, a, b, bId: bId as string }
}

describe('SwarmSession divergence', () => {
  it('a diverging run: each tab stops but stays in the room, the room pauses itself and says why; a new run trains again', async () => {
    const server = new FakeServer()
    const room = server.registry.get(ROOM)!
    room.config = { ...cfg(), lr: 4 }
    const a = session(server)
    const b = session(server)
    await a.start()
    await b.start()
    await until('both tabs diverged', () => a.snapshot().stage === 'diverged' && b.snapshot().stage === 'diverged', 20_000)
    await until('the room paused itself', () => room.paused)
    const mark = server.registry.membership(room).diverged
    expect(mark).not.toBeNull()
    expect(mark!.reason).toMatch(/loss|finite/)
    for (const t of [a, b]) {
      const snap = t.snapshot()
      expect(snap.error).toBeNull()
      expect(snap.diverged).toMatchObject({ step: mark!.step, hint: expect.stringContaining('learning rate') })
    }
    // Nobody left or was dropped: both are still in the roster, reporting 'diverged'.
    expect(roster(server)).toHaveLength(2)
    expect(server.registry.view(room).peers.map((p) => p.stage)).toEqual(['diverged', 'diverged'])
    const stepAtStop = a.snapshot().step
    // The host's new run with a sane learning rate: both train again from scratch.
    server.registry.startNewRun(room, cfg())
    server.broadcast()
    await until('both train again', () => [a, b].every((t) => t.snapshot().stage === 'training' && t.snapshot().step >= 3), 20_000)
    for (const t of [a, b]) expect(t.snapshot().diverged).toBeNull()
    expect(stepAtStop).toBeGreaterThan(0)
    await a.leave()
    await b.leave()
  })
})

describe('SwarmSession (registry + memory mesh)', () => {
  it('counts the wall-clock time spent measuring accuracy (evalMs), so benchmarks can tell it from training', async () => {
    const server = new FakeServer()
    const a = session(server, { evalMs: 40 })
    const t0 = performance.now()
    expect(a.snapshot().evalMs).toBe(0)
    await a.start()
    await until('a evaluated once', () => a.snapshot().accuracy === 0.5)
    const s = a.snapshot()
    expect(s.evalMs).toBeGreaterThanOrEqual(35)
    expect(s.evalMs).toBeLessThanOrEqual(performance.now() - t0)
    await a.leave()
  })

  it('a joiner stays out of the roster while it loads, the others keep stepping, then it enters and trains', async () => {
    const server = new FakeServer()
    const a = session(server)
    await a.start()
    await until('a trains alone', () => a.snapshot().step > 3)
    let release!: () => void
    const b = session(server, { prepared: new Promise<void>((r) => (release = r)) })
    await b.start()
    const bId = b.snapshot().self!
    expect(server.registry.get(ROOM)!.peers.has(bId)).toBe(true) // joined…
    expect(roster(server)).not.toContain(bId) // …but pending
    const before = a.snapshot().step
    await until('a keeps stepping while b loads', () => a.snapshot().step > before + 20)
    expect(roster(server)).not.toContain(bId)
    expect(b.snapshot().stage).toBe('loading')
    release()
    await until('b in the roster', () => roster(server).includes(bId))
    const bStart = await until('b steps', () => b.snapshot().step > 0 && b.snapshot().step)
    await until('both keep stepping', () => b.snapshot().step > bStart + 10 && a.snapshot().step > before + 40)
    expect(a.snapshot().peers).toEqual([a.snapshot().self, bId])
    await a.leave()
    await b.leave()
  })

  it('a tab whose compute fails reports the error and leaves the roster instead of stalling its neighbours', async () => {
    const server = new FakeServer()
    const a = session(server)
    const b = session(server, { failAfter: 5 })
    await a.start()
    await b.start()
    const bId = await until('b joined', () => b.snapshot().self)
    await until('b failed', () => b.snapshot().stage === 'error')
    expect(b.snapshot().error).toMatch(/device lost/)
    await until('b left the roster', () => !roster(server).includes(bId))
    const s = a.snapshot().step
    await until('a keeps stepping alone', () => a.snapshot().step > s + 20)
    await a.leave()
  })

  it('a new run empties the roster; every tab reloads, re-enters when ready and trains the new run', async () => {
    const server = new FakeServer()
    const a = session(server)
    const b = session(server)
    await a.start()
    await b.start()
    await until('both step', () => a.snapshot().step > 3 && b.snapshot().step > 3)
    server.newRun()
    expect(roster(server)).toEqual([])
    await until('both back in the roster', () => roster(server).length === 2)
    await until('both train run 2', () => [a, b].every((x) => x.snapshot().run === 2 && x.snapshot().stage === 'training' && x.snapshot().step > 3))
    // Same peer ids: they re-entered, they did not rejoin as strangers.
    expect(new Set(roster(server))).toEqual(new Set([a.snapshot().self, b.snapshot().self]))
    await a.leave()
    await b.leave()
  })

  it('a new run arriving while a tab waits to enter the roster restarts it instead of failing it', async () => {
    const server = new FakeServer()
    const a = session(server)
    await a.start()
    await until('a steps', () => a.snapshot().step > 3)
    server.holdReady.add('s1') // the next port's id
    const b = session(server)
    await b.start()
    await until('b waits for the roster', () => b.snapshot().stage === 'connecting')
    server.newRun()
    await until('a back in run 2', () => roster(server).includes(a.snapshot().self!))
    server.releaseReady('s1')
    await until('b trains run 2', () => b.snapshot().run === 2 && b.snapshot().stage === 'training' && b.snapshot().step > 3)
    expect(b.snapshot().error).toBeNull()
    await a.leave()
    await b.leave()
  })

  it('an evicted tab waits out its cooldown, then joins again and trains', async () => {
    const { server, a, b, bId } = await twoInRoster()
    await until('b steps', () => b.snapshot().step > 2)
    server.evict(bId)
    const evictedAt = Date.now()
    expect(roster(server)).not.toContain(bId)
    await until('b back in the roster', () => roster(server).includes(bId), 10_000)
    // The first cooldown is 3 s; the rejoin must not have come earlier.
    expect(Date.now() - evictedAt).toBeGreaterThanOrEqual(2900)
    const s = b.snapshot().step
    await until('b trains again', () => b.snapshot().stage === 'training' && b.snapshot().step > s)
    await a.leave()
    await b.leave()
  }, 15_000)

  it('the room credits a tab across a pause: its credit never drops, grows again after resume, and shows in the snapshot', async () => {
    const { server, a, b, bId } = await twoInRoster()
    await until('b credited', () => (b.snapshot().credit?.samples ?? 0) > 0)
    b.pause()
    await until('b out of the roster', () => !roster(server).includes(bId))
    const room = server.registry.get(ROOM)!
    const kept = server.registry.creditOf(room, bId)
    expect(kept).toBeGreaterThan(0)
    // Its run counters restart when it comes back; the room's count for it does not.
    b.resume()
    await until('b trains again', () => b.snapshot().stage === 'training')
    await until('b credited beyond what it had', () => server.registry.creditOf(room, bId) > kept)
    await until('the snapshot follows', () => (b.snapshot().credit?.samples ?? 0) > kept)
    expect(b.snapshot().credit).toMatchObject({ of: 2 })
    expect(server.registry.view(room).leaderboard.map((e) => e.id).sort()).toEqual([a.snapshot().self, bId].sort())
    await a.leave()
    await b.leave()
  })

  it('a paused tab steps out of the roster at once: no eviction, the neighbour does not wait for it; resume brings it back', async () => {
    const { server, a, b, bId } = await twoInRoster()
    await until('both step', () => a.snapshot().step > 3 && b.snapshot().step > 3)
    const epoch = server.registry.get(ROOM)!.epoch
    b.pause()
    await until('b out of the roster', () => !roster(server).includes(bId))
    expect(server.registry.get(ROOM)!.epoch).toBeGreaterThan(epoch)
    expect(server.registry.get(ROOM)!.peers.has(bId)).toBe(true) // still joined
    await until('b paused', () => b.snapshot().stage === 'paused')
    expect(b.snapshot().away).toBe('paused')
    // Had b stayed in the roster, each of a's steps would wait out the 300 ms deadline for it.
    const s0 = a.snapshot().step
    const t0 = Date.now()
    await until('a steps alone at full speed', () => a.snapshot().step > s0 + 30, 3000)
    expect(Date.now() - t0).toBeLessThan(30 * 300)
    const bStep = b.snapshot().step
    await new Promise((r) => setTimeout(r, 300))
    expect(b.snapshot().step).toBe(bStep)
    expect(server.registry.get(ROOM)!.evictions).toEqual([])
    // The dashboard lists it as away, and its reports still arrive.
    const joining = server.registry.view(server.registry.get(ROOM)!).joining
    expect(joining).toEqual([expect.objectContaining({ id: bId, away: 'paused', stage: 'paused' })])
    b.resume()
    await until('b back under the same id', () => roster(server).includes(bId))
    await until('b trains again', () => b.snapshot().stage === 'training' && b.snapshot().step > bStep + 5)
    expect(b.snapshot().away).toBeNull()
    expect(server.registry.get(ROOM)!.evictions).toEqual([])
    await a.leave()
    await b.leave()
  })

  it('a hidden tab steps out and comes back when visible, but not while its user has paused it', async () => {
    const { server, a, b, bId } = await twoInRoster()
    b.setHidden(true)
    await until('hidden b out of the roster', () => !roster(server).includes(bId))
    expect(server.registry.view(server.registry.get(ROOM)!).joining[0]).toMatchObject({ id: bId, away: 'hidden' })
    b.pause()
    b.setHidden(false)
    // Visible again but paused by its user: stays out (the reason on the dashboard is now 'paused').
    await until('reason is paused', () => server.registry.view(server.registry.get(ROOM)!).joining[0]?.away === 'paused')
    await new Promise((r) => setTimeout(r, 400))
    expect(roster(server)).not.toContain(bId)
    b.resume()
    await until('b back', () => roster(server).includes(bId))
    const s = b.snapshot().step
    await until('b trains', () => b.snapshot().step > s + 3)
    await a.leave()
    await b.leave()
  })

  it('host "disconnect" drops the tab out of the room and it rejoins and trains by itself', async () => {
    const { server, a, b, bId } = await twoInRoster()
    await until('b steps', () => b.snapshot().step > 3)
    const epochs = server.epochs.length
    server.command(bId, { v: PROTOCOL_VERSION, type: 'disconnect' })
    await until('b dropped out of the roster', () => !roster(server).includes(bId))
    expect(server.epochs.length).toBeGreaterThan(epochs)
    // Back under a new id, as after any reconnect: its old messages cannot shadow its new ones.
    const again = await until('b back in the roster', () => {
      const id = b.snapshot().self
      return id && id !== bId && roster(server).includes(id) && id
    }, 10_000)
    expect(roster(server)).toEqual([a.snapshot().self, again])
    await until('b trains again', () => b.snapshot().stage === 'training' && b.snapshot().step > 3, 10_000)
    expect(b.snapshot().error).toBeNull()
    expect(b.snapshot().log.map((l) => l.detail).join('\n')).toMatch(/disconnected/)
    const s = a.snapshot().step
    await until('a keeps stepping', () => a.snapshot().step > s + 10)
    await a.leave()
    await b.leave()
  }, 15_000)

  it('a rejoin whose join goes unanswered asks again and trains, instead of ending in an error', async () => {
    const { server, a, b, bId } = await twoInRoster()
    await until('b steps', () => b.snapshot().step > 3)
    server.unansweredJoins = 2
    server.command(bId, { v: PROTOCOL_VERSION, type: 'disconnect' })
    await until('b back in the roster', () => {
      const id = b.snapshot().self
      return id && id !== bId && roster(server).includes(id)
    }, 10_000)
    expect(server.unansweredJoins).toBe(0)
    await until('b trains again', () => b.snapshot().stage === 'training' && b.snapshot().step > 3, 10_000)
    expect(b.snapshot().error).toBeNull()
    expect(b.snapshot().log.filter((l) => /join unanswered/.test(l.detail ?? '')).length).toBe(2)
    await a.leave()
    await b.leave()
  }, 15_000)

  it('reports the host\'s fault injection so the dashboard can show it', async () => {
    const server = new FakeServer()
    const a = session(server)
    await a.start()
    const aId = await until('a steps', () => a.snapshot().step > 2 && a.snapshot().self)
    server.command(aId, { v: PROTOCOL_VERSION, type: 'slow', factor: 4 })
    server.command(aId, { v: PROTOCOL_VERSION, type: 'latency', ms: 200 })
    expect(a.snapshot().faults).toEqual({ slowFactor: 4, latencyMs: 200 })
    const peer = await until('the room sees it', () => server.registry.view(server.registry.get(ROOM)!).peers.find((p) => p.id === aId && p.slowFactor === 4))
    expect(peer.addedLatencyMs).toBe(200)
    await a.leave()
  })

  it('tabs that come back together after a restart all resume from the checkpoint', async () => {
    const server = new FakeServer()
    const saved = new Float32Array(problem.shards[0].d).fill(0.75)
    putCheckpoint(server, 500, saved)
    server.holdReady.add('s0').add('s1')
    const a = session(server)
    const b = session(server)
    await a.start()
    await b.start()
    await until('both wait for the roster', () => a.snapshot().stage === 'connecting' && b.snapshot().stage === 'connecting')
    server.releaseAllReady()
    expect(roster(server)).toHaveLength(2)
    for (const x of [a, b]) {
      await until('resumed', () => x.snapshot().log.some((l) => /resumed from the room checkpoint at step 500/.test(l.detail ?? l.text)))
      await until('past the checkpoint', () => x.snapshot().globalStep > 500)
    }
    await a.leave()
    await b.leave()
  })

  it('a tab joining a swarm that is past the checkpoint does not go back to it', async () => {
    const server = new FakeServer()
    putCheckpoint(server, 50, new Float32Array(problem.shards[0].d).fill(0.75))
    const a = session(server)
    await a.start()
    await until('a resumed and moved on', () => a.snapshot().globalStep > 80)
    await until('a reported it', () => (server.registry.view(server.registry.get(ROOM)!).peers[0]?.globalStep ?? 0) > 60)
    const b = session(server)
    await b.start()
    await until('b trains', () => b.snapshot().stage === 'training' && b.snapshot().step > 0)
    expect(b.snapshot().log.some((l) => /resumed from the room checkpoint/.test(l.detail ?? l.text))).toBe(false)
    expect(b.snapshot().log.some((l) => /checkpoint \(step 50\) not used/.test(l.detail ?? l.text))).toBe(true)
    await a.leave()
    await b.leave()
  })

  it("bounds its progress clock by the room's progress as the server publishes it (docs/security.md)", async () => {
    const server = new FakeServer()
    // A checkpoint of another model: never loaded, but the server's word on how far the room got.
    const room = server.registry.get(ROOM)!
    room.checkpoint = { run: room.run, step: 50_000, schemaHash: 'other-model', params: new Uint8Array(4 * problem.shards[0].d), savedAt: Date.now() }
    const a = session(server)
    await a.start()
    await until('a trains', () => a.snapshot().stage === 'training' && a.snapshot().step > 0)
    expect(a.snapshot().log.some((l) => /resumed from the room checkpoint/.test(l.detail ?? l.text))).toBe(false)
    // Alone in the memory network (no live progress there): the room's published progress counts.
    const clock = server.net.mesh(a.snapshot().self!)!.clock
    expect(clock.ceiling()).toBeGreaterThanOrEqual(50_000 + CLOCK_SLACK_STEPS)
    expect(clock.ceiling()).toBeLessThan(60_000)
    expect(clock.observe(50_500)).toBe(true)
    await a.leave()
  })
})

describe('SwarmSession rollback', () => {
  it("a host's rollback makes every tab reload the room checkpoint although the swarm is past it, and train on", async () => {
    const { server, a, b, bId } = await twoInRoster()
    const aId = a.snapshot().self!
    await until('both past step 60', () => a.snapshot().globalStep > 60 && b.snapshot().globalStep > 60)
    putCheckpoint(server, 20, new Float32Array(problem.shards[0].d).fill(0.5))
    for (const id of [aId, bId]) server.command(id, { v: PROTOCOL_VERSION, type: 'restore-checkpoint', step: 20 })
    for (const x of [a, b]) {
      await until('told', () => x.snapshot().log.some((l) => /rolled the room back to its checkpoint at step 20/.test(l.detail ?? l.text)))
      await until('reloaded', () => x.snapshot().log.some((l) => /resumed from the room checkpoint at step 20/.test(l.detail ?? l.text)))
    }
    const s = a.snapshot().step
    await until('a trains on', () => a.snapshot().stage === 'training' && a.snapshot().step > s + 3)
    await a.leave()
    await b.leave()
  })
})

describe('describeEvent', () => {
  it('puts algorithm events in plain words, and keeps the technical account as detail, without JSON', () => {
    expect(describeEvent('realign', { kind: 'dpsgd/x', from: 25, to: 26 })).toEqual({ text: 'Caught up with the others', detail: 'realign: round 25 → 26' })
    expect(describeEvent('rejected', { from: 'abcdefghijkl', kind: 'x', round: 3, why: 'NaN/Inf in payload' }))
      .toEqual({ text: 'Ignored a damaged message from a neighbour', detail: 'refused a message from abcdefgh: NaN/Inf in payload' })
    expect(describeEvent('ad-psgd/bootstrap', { donors: 1 }).text).toBe('Started from what a neighbour has learned so far')
    expect(describeEvent('ad-psgd/bootstrap', { donors: 3 }).text).toBe('Started from what 3 neighbours have learned so far')
    const other = describeEvent('asgd/applied', { version: 12, staleness: 0.5, nested: { a: 1 } })
    expect(other).toEqual({ text: 'Applied', detail: 'asgd/applied: version 12, staleness 0.500' })
    expect(JSON.stringify(Object.values(other))).not.toMatch(/[{}]/)
  })
})

describe('plain-language activity log', () => {
  it('says what happened without jargon; ids, rounds and backend measurements stay in the detail', () => {
    const lines = [
      say.backend('wasm', 'forced by ?backend='), say.backend('webgpu', 'fastest measured: 40.0 steps/s (vs wasm 12.0)'),
      say.joined('LAB', 'p-abcdef0123', 'Brave Otter'), say.steppedOut('hidden'), say.steppedOut('paused'),
      say.rejoining('reconnected to the server'), say.training('dpsgd', 'ring', 'mnist', 'mlp'), say.modelThread(true, true),
      say.checkpointSkipped(50, 80), say.stepDeadline('neighbour x missed dpsgd/round 11'),
    ]
    for (const l of lines) {
      expect(l.text).not.toMatch(/\?backend=|round \d|roster|backend |measured|p-abcdef|dpsgd|worker thread|checkpoint \(/)
      expect(l.detail).toBeTruthy()
    }
    expect(lines[0]).toEqual({ text: 'Computing on the processor (WebAssembly), as the link asks', detail: 'backend wasm: forced by ?backend=' })
    expect(lines[2]).toEqual({ text: 'Joined room LAB as Brave Otter', detail: 'joined room LAB as p-abcdef0123' })
    expect(formatLogLine({ at: '12:00:00', ...lines[2] })).toBe('12:00:00 Joined room LAB as Brave Otter [joined room LAB as p-abcdef0123]')
  })
})
