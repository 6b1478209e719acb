import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultConfig } from '../shared/config'
import { startRedis, type RunningRedis } from '../tests/support/redis'
import { waitFor } from '../tests/support/server'
import { freePort } from '../tools/cluster'
import { RedisOwnership, processToken, type ClusterBus } from './ownership'
import { leaseKey, redisStore } from './redis-store'
import { roomStoreSuite } from './room-store.suite'
import { RoomRegistry } from './rooms'
import { startServer } from './server'

/**
 * Room state in a real redis-server: the same room-state suite as SQLite (room-store.test.ts),
 * then the leases that decide which process serves a room (ownership.ts) with two "processes"
 * (two registries, stores and Redis connections) in this test.
 */

let redis: RunningRedis
const clients: Redis[] = []
const client = () => {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 2 })
  clients.push(c)
  return c
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => undefined)))
  await redis?.stop()
})

describe('room state in Redis', () => {
  roomStoreSuite(async () => {
    const r = client()
    await r.flushall()
    const token = processToken()
    const store = redisStore(r, token, (err) => { throw err })
    return {
      store,
      own: async (room) => { await r.set(leaseKey(room), token, 'PX', 60_000) },
      // Another process: its own connection, reading what this one wrote.
      reload: async (room) => {
        await store.flush()
        return redisStore(client(), processToken()).load(room)
      },
      close: async () => {},
    }
  })
})

/** socket.io's serverSideEmit between two processes, here between two objects. */
function localBus(hub: EventEmitter): ClusterBus {
  return {
    requestRelease: (room) => void hub.emit('release', room),
    onReleaseRequest: (cb) => void hub.on('release', cb),
  }
}

function process_(hub: EventEmitter, name: string) {
  const r = client()
  const token = processToken()
  const store = redisStore(r, token)
  const registry = new RoomRegistry({ store })
  const dropped: string[] = []
  const ownership = new RedisOwnership({ redis: r, token, registry, store, bus: localBus(hub), log: () => {}, leaseMs: 2_000 })
  ownership.onDrop((room) => dropped.push(room))
  return { name, r, token, store, registry, ownership, dropped }
}

describe('which process serves a room', () => {
  it('one process holds a room; another one routed to it gets it handed over, loaded from Redis, and the old holder can no longer write', async () => {
    await client().flushall()
    const hub = new EventEmitter()
    const a = process_(hub, 'a')
    const b = process_(hub, 'b')
    try {
      expect(await a.ownership.claim('lab', 'lab', { create: true })).toEqual({ ok: true, name: 'lab' })
      const created = a.registry.create({ name: 'lab', config: { ...defaultConfig(), lr: 0.3 }, tokenHash: 'a'.repeat(64) })
      expect(created.ok).toBe(true)
      const code = a.registry.get('lab')!.code
      await a.store.flush()
      // Asked for by its join code, the room is served under its name: reconnect for that.
      expect(await b.ownership.claim(code, code)).toMatchObject({ ok: false, code: 'moved', room: 'lab' })
      // A fresh room cannot be created under a taken name, nor does trying pull the room over.
      expect(await b.ownership.claim('lab', null, { create: true, fresh: true })).toMatchObject({ ok: false, code: 'exists' })
      // Routed by its name: the empty room is handed over at once.
      expect(await b.ownership.claim('lab', 'lab')).toEqual({ ok: true, name: 'lab' })
      expect(a.dropped).toEqual(['lab'])
      expect(a.registry.get('lab')).toBeUndefined()
      const moved = b.registry.get('lab')!
      expect(moved.config.lr).toBe(0.3)
      expect(moved.tokenHash).toBe('a'.repeat(64))
      expect(await b.r.get(leaseKey('lab'))).toBe(b.token)
      // The former holder's late write is refused by Redis (fenced by the lease).
      const before = a.store.fenced
      a.store.saveRoom({ name: 'lab', code, createdAt: 0, config: defaultConfig(), tokenHash: null, run: 9, paused: true, epoch: 99 })
      await a.store.flush()
      expect(a.store.fenced).toBe(before + 1)
      expect((await b.store.load('lab'))?.run).toBe(1)
    } finally {
      await a.ownership.close()
      await b.ownership.close()
    }
  })

  it('a room with people in it stays with its holder for a while; the claim answers busy with a retry time', async () => {
    await client().flushall()
    const hub = new EventEmitter()
    const a = process_(hub, 'a')
    const b = process_(hub, 'b')
    try {
      expect((await a.ownership.claim('busy', 'busy', { create: true })).ok).toBe(true)
      expect(a.registry.join('busy', { id: 'p1', role: 'volunteer' }).ok).toBe(true)
      const c = await b.ownership.claim('busy', 'busy')
      expect(c).toMatchObject({ ok: false, code: 'busy' })
      expect(a.registry.get('busy')?.peers.size).toBe(1)
      expect(a.dropped).toEqual([])
    } finally {
      await a.ownership.close()
      await b.ownership.close()
    }
  })

  it('a holder that stops renewing (a dead process) loses the room after the lease; another process then takes it', async () => {
    await client().flushall()
    const hub = new EventEmitter()
    const a = process_(hub, 'a')
    const b = process_(hub, 'b')
    try {
      expect((await a.ownership.claim('orphan', 'orphan', { create: true })).ok).toBe(true)
      a.registry.create({ name: 'orphan', config: defaultConfig(), tokenHash: 'b'.repeat(64) })
      a.registry.join('orphan', { id: 'p1', role: 'volunteer' })
      await a.store.flush()
      // "Kill" a: it stops renewing and answers nothing (its hand-over handler is gone too).
      hub.removeAllListeners('release')
      ;(a.ownership as unknown as { timer: NodeJS.Timeout }).timer.unref()
      clearInterval((a.ownership as unknown as { timer: NodeJS.Timeout }).timer)
      let got = await b.ownership.claim('orphan', 'orphan')
      while (!got.ok) got = await b.ownership.claim('orphan', 'orphan')
      expect(b.registry.get('orphan')?.tokenHash).toBe('b'.repeat(64))
      expect(await b.r.pttl(leaseKey('orphan'))).toBeGreaterThan(0)
    } finally {
      await b.ownership.close()
    }
  }, 30_000)
})

describe('a server process on Redis', () => {
  it('refuses to start when REDIS_URL cannot be reached, and says why', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-redis-'))
    try {
      await expect(startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: dataDir, redisUrl: `redis://127.0.0.1:${await freePort()}` }))
        .rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\)/)
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  it('answers /healthz 503 while Redis is gone, so the balancer takes it out', async () => {
    const own = await startRedis()
    const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-redis-'))
    const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, staticDir: dataDir, redisUrl: own.url })
    try {
      const health = async () => (await fetch(`${server.url}/healthz`)).status
      expect(await health()).toBe(200)
      await own.stop()
      await waitFor('/healthz to answer 503', async () => (await health()) === 503, 15_000, 100)
    } finally {
      await server.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 30_000)
})
