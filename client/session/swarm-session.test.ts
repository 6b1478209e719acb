import { describe, expect, it } from 'vitest'
import { parseRoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import { JoinRejectedError, type MembershipAnnouncement, type PeerCommand } from '../../shared/protocol/signaling'
import { LsqCompute, makeLsqProblem } from '../../shared/testing/lsq-compute'
import { MemoryNetwork } from '../../shared/testing/memory-mesh'
import type { Unsubscribe } from '../../shared/transport'
import { RoomRegistry } from '../../signaling-server/rooms'
import { withSessionControls } from './platform'
import { SwarmSession, type SessionPlatform, type SignalingPort } from './swarm-session'

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
    for (const set of this.membership.values()) for (const cb of set) cb(m)
  }

  newRun(): void {
    this.registry.startNewRun(this.registry.get(ROOM)!)
    this.broadcast()
  }

  evict(id: string): void {
    const room = this.registry.get(ROOM)!
    const others = room.roster.filter((p) => p !== id)
    for (const o of others) this.registry.suspect(o, id, 'test eviction')
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

  port(): SignalingPort {
    const id = `s${this.next++}`
    const subs = new Set<(m: MembershipAnnouncement) => void>()
    this.membership.set(id, subs)
    return {
      join: async () => {
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
      onCommand: (_cb: (c: PeerCommand) => void): Unsubscribe => () => {},
      onRemoved: (cb): Unsubscribe => (this.removed.set(id, cb), () => this.removed.delete(id)),
      onReconnect: (): Unsubscribe => () => {},
      report: () => {},
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

function session(server: FakeServer, opts: { prepared?: Promise<void>; failAfter?: number } = {}): SwarmSession {
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
      return { compute, train: {} as Dataset, evaluate: async () => ({ loss: 0, accuracy: 0.5 }), dispose: () => {} }
    },
    createMesh: ({ self }) => {
      const mesh = server.net.join(self)
      return withSessionControls(mesh, () => server.net.leave(self))
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

describe('SwarmSession (registry + memory mesh)', () => {
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
    const server = new FakeServer()
    const a = session(server)
    const b = session(server)
    await a.start()
    await b.start()
    const bId = await until('b in the roster', () => roster(server).includes(b.snapshot().self ?? '') && b.snapshot().self)
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
})


