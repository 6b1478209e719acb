import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { leaseKey, type RedisRoomStore } from './redis-store'
import type { RoomRegistry } from './rooms'

/**
 * Which server process serves a room (docs/deploy.md "Several processes").
 *
 * One process holds a room at a time and applies its events in memory, as the single-process
 * server does; Redis holds the room's durable state (redis-store.ts) and its lease. The
 * balancer (deploy/haproxy.cfg) hashes each connection's `room` to one process, so a room's
 * sockets meet on the process that holds it. When that process dies its lease runs out within
 * LEASE_MS; the reconnecting sockets land on another process, which takes the lease, loads the
 * room from Redis and lets them rejoin. When the balancer sends a room to a live process that
 * does not hold it (a process came back and the hash moved), that process asks the holder to
 * hand the room over: the holder writes what it has, lets go, and sends its sockets back
 * through the balancer.
 *
 * Without REDIS_URL there is one process and LocalOwnership grants every claim.
 */

export type Claim =
  | { ok: true; name: string }
  /** The room lives under `room`: reconnect with `room` as the routing key and join it by that name. */
  | { ok: false; code: 'moved'; room: string; message: string }
  | { ok: false; code: 'busy'; message: string; retryAfterMs: number }
  /** Asked with `fresh` for a room that exists already. */
  | { ok: false; code: 'exists'; message: string }

export interface RoomOwnership {
  readonly clustered: boolean
  /**
   * Makes this process the one serving the room `key` (a name or join code), loading it from
   * the store when another process had it. `routedAs`: the key the balancer routed this
   * request by (the socket's `room` query, the URL's room), null when there is none.
   */
  claim(key: string, routedAs: string | null, opts?: { create?: boolean; fresh?: boolean }): Promise<Claim>
  /** `cb(name)` runs after a room left this process (lease lost or handed over): send its sockets away. */
  onDrop(cb: (room: string) => void): void
  /** False while this process cannot reach its room store (the balancer's health check then takes it out). */
  healthy(): boolean
  close(): Promise<void>
}

export class LocalOwnership implements RoomOwnership {
  readonly clustered = false
  constructor(private readonly registry: RoomRegistry) {}
  claim(key: string): Promise<Claim> {
    return Promise.resolve({ ok: true, name: this.registry.get(key)?.name ?? key })
  }
  onDrop(): void {}
  healthy(): boolean {
    return true
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** How long a lease lasts without renewal: the bound on how long a dead process keeps its rooms. */
export const LEASE_MS = 6_000
/** A claim for a room another live process holds waits this long for the hand-over. */
export const HANDOVER_WAIT_MS = 3_000
/** A process keeps a room at least this long before handing it over (no ping-pong between two processes). */
export const MIN_TENURE_MS = 5_000
/** At most one hand-over request per room per this interval from one process. */
export const HANDOVER_REQUEST_MIN_INTERVAL_MS = 1_000
/** Rooms whose hand-over requests this process remembers (bounded: a flood of names cannot grow it). */
const MAX_REQUEST_MEMORY = 10_000

/** ARGV[1] token, ARGV[2] ms. 1 when the lease is (now) ours. */
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

type LeaseRedis = Redis & {
  tsAcquire(key: string, token: string, ms: number): Promise<number>
  tsRenew(key: string, token: string, ms: number): Promise<number>
  tsRelease(key: string, token: string): Promise<number>
}

/** A fresh lease value for one process (its writes are fenced by it, redis-store.ts). */
export function processToken(): string {
  return `${process.pid}-${randomBytes(8).toString('hex')}`
}

export interface ClusterBus {
  /** Tells every other process (socket.io's serverSideEmit over the Redis adapter). */
  requestRelease(room: string): void
  /** Registers the handler for other processes' requests. */
  onReleaseRequest(cb: (room: string) => void): void
}

export interface RedisOwnershipOptions {
  redis: Redis
  token: string
  registry: RoomRegistry
  store: RedisRoomStore
  bus: ClusterBus
  log: (msg: string) => void
  leaseMs?: number
  now?: () => number
}

export class RedisOwnership implements RoomOwnership {
  readonly clustered = true
  private readonly redis: LeaseRedis
  private readonly token: string
  private readonly registry: RoomRegistry
  private readonly store: RedisRoomStore
  private readonly log: (msg: string) => void
  private readonly leaseMs: number
  private readonly now: () => number
  /** Room name → when this process took it. */
  private readonly owned = new Map<string, number>()
  private readonly adopting = new Map<string, Promise<void>>()
  private readonly requested = new Map<string, number>()
  private readonly dropListeners: Array<(room: string) => void> = []
  private readonly timer: NodeJS.Timeout
  private lastRenewOk: number
  private closed = false

  constructor(private readonly opts: RedisOwnershipOptions) {
    this.redis = opts.redis as LeaseRedis
    if (typeof this.redis.tsAcquire !== 'function') {
      opts.redis.defineCommand('tsAcquire', { numberOfKeys: 1, lua: ACQUIRE })
      opts.redis.defineCommand('tsRenew', { numberOfKeys: 1, lua: RENEW })
      opts.redis.defineCommand('tsRelease', { numberOfKeys: 1, lua: RELEASE })
    }
    this.token = opts.token
    this.registry = opts.registry
    this.store = opts.store
    this.log = opts.log
    this.leaseMs = opts.leaseMs ?? LEASE_MS
    this.now = opts.now ?? Date.now
    this.lastRenewOk = this.now()
    opts.bus.onReleaseRequest((room) => void this.handOver(room).catch((err: unknown) => this.log(`hand-over of '${room}' failed: ${String(err)}`)))
    this.timer = setInterval(() => void this.renew(), Math.max(200, Math.floor(this.leaseMs / 3)))
    this.timer.unref()
  }

  /** Rooms this process serves now. */
  rooms(): string[] {
    return [...this.owned.keys()]
  }

  async claim(key: string, routedAs: string | null, opts: { create?: boolean; fresh?: boolean } = {}): Promise<Claim> {
    if (this.closed) return { ok: false, code: 'busy', message: 'this server is shutting down; try again', retryAfterMs: 1000 }
    const local = this.registry.get(key)
    if (local && this.owned.has(local.name)) return opts.fresh ? { ok: false, code: 'exists', message: `room: '${key}' already exists` } : { ok: true, name: local.name }
    const stored = local?.name ?? (await this.store.resolve(key))
    // Creating a room under a taken name must not pull that room away from its process.
    if (opts.fresh && stored !== null) return { ok: false, code: 'exists', message: `room: '${key}' already exists` }
    // Nothing to serve and nothing to create (a GET of an unknown room): no lease for it.
    if (stored === null && !opts.create) return { ok: true, name: key }
    const name = stored ?? key
    // The balancer routes by the key it was given: a room reached by its code (or any alias)
    // must be reached by its name, or its sockets would be split between two processes.
    if (routedAs !== null && routedAs !== name && !this.owned.has(name))
      return { ok: false, code: 'moved', room: name, message: `room '${key}' is served under its name '${name}'; reconnect for it` }
    if (await this.acquire(name)) return { ok: true, name }
    const last = this.requested.get(name) ?? -Infinity
    if (this.now() - last >= HANDOVER_REQUEST_MIN_INTERVAL_MS) {
      this.requested.set(name, this.now())
      if (this.requested.size > MAX_REQUEST_MEMORY) this.requested.delete(this.requested.keys().next().value as string)
      this.opts.bus.requestRelease(name)
    }
    const deadline = this.now() + HANDOVER_WAIT_MS
    while (this.now() < deadline && !this.closed) {
      await new Promise((r) => setTimeout(r, 100))
      if (await this.acquire(name)) return { ok: true, name }
    }
    return { ok: false, code: 'busy', message: `room '${name}' is moving between servers; joining again shortly`, retryAfterMs: 1000 }
  }

  onDrop(cb: (room: string) => void): void {
    this.dropListeners.push(cb)
  }

  healthy(): boolean {
    return !this.closed && this.redis.status === 'ready' && this.now() - this.lastRenewOk <= this.leaseMs
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    // Let the next process take our rooms at once rather than after the lease runs out.
    await this.store.flush()
    await Promise.all(this.rooms().map((r) => this.redis.tsRelease(leaseKey(r), this.token).catch(() => 0)))
    this.owned.clear()
  }

  /** Takes the lease when it is free (or ours) and loads the room unless it is here already. */
  private async acquire(name: string): Promise<boolean> {
    const ok = (await this.redis.tsAcquire(leaseKey(name), this.token, this.leaseMs)) === 1
    if (!ok) return false
    if (!this.owned.has(name)) {
      let p = this.adopting.get(name)
      if (!p) {
        p = this.adopt(name).finally(() => this.adopting.delete(name))
        this.adopting.set(name, p)
      }
      await p
    }
    return true
  }

  private async adopt(name: string): Promise<void> {
    if (!this.registry.get(name)) {
      const saved = await this.store.load(name)
      if (saved) {
        this.registry.restore([saved])
        this.log(`room '${name}' taken over from Redis (run ${saved.run}, epoch ${saved.epoch})`)
      }
    }
    this.owned.set(name, this.now())
  }

  private async renew(): Promise<void> {
    // A lease taken for a room that was then never created (a refused join) is let go.
    for (const [n, since] of this.owned) {
      if (!this.registry.get(n) && this.now() - since > this.leaseMs) {
        this.owned.delete(n)
        await this.redis.tsRelease(leaseKey(n), this.token).catch(() => 0)
      }
    }
    const names = this.rooms()
    try {
      const results = await Promise.all(names.map((n) => this.redis.tsRenew(leaseKey(n), this.token, this.leaseMs)))
      this.lastRenewOk = this.now()
      names.forEach((n, i) => {
        if (results[i] !== 1 && this.owned.has(n)) {
          this.log(`lost the lease of room '${n}'; another server serves it now`)
          this.drop(n)
        }
      })
    } catch (err) {
      // Without Redis this process cannot prove it still holds anything: past the lease, let go.
      this.log(`lease renewal failed: ${String(err)}`)
      if (this.now() - this.lastRenewOk > this.leaseMs) for (const n of this.rooms()) this.drop(n)
    }
  }

  /** Another process was routed this room: write what we have, let go and send the sockets there. */
  private async handOver(name: string): Promise<void> {
    const since = this.owned.get(name)
    if (since === undefined) return
    // An empty room moves for free (a room created through whichever process took the POST
    // moves to the one its name routes to); one with people in it stays a while first.
    const occupied = (this.registry.get(name)?.peers.size ?? 0) > 0
    if (occupied && this.now() - since < MIN_TENURE_MS) return
    this.drop(name)
    await this.store.flush()
    await this.redis.tsRelease(leaseKey(name), this.token)
    this.log(`room '${name}' handed over to another server`)
  }

  private drop(name: string): void {
    this.owned.delete(name)
    const room = this.registry.get(name)
    if (room && room.name === name) {
      // Credit is saved every few seconds; what accrued since goes with the room (fenced: a
      // lease already lost refuses it).
      this.registry.persistState(room)
      this.registry.unload(room)
    }
    for (const cb of this.dropListeners) {
      try {
        cb(name)
      } catch (err) {
        this.log(`dropping room '${name}': ${String(err)}`)
      }
    }
  }
}
