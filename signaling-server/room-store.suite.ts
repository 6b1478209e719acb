import { expect, it } from 'vitest'
import { defaultConfig } from '../shared/config'
import { modelLayout } from '../shared/model-shapes'
import { reportSchema } from '../shared/protocol/signaling'
import { HISTORY_SAMPLE_INTERVAL_MS } from './history'
import { RoomRegistry, type PersistedRoom, type RoomStore } from './rooms'

/**
 * The room-state suite both back ends pass (room-store.test.ts: SQLite; redis-store.int.test.ts:
 * Redis): what one server process writes, the next one — after a restart, or another process
 * taking the room over — reads back, so hosts, volunteers and evicted peers find the room as
 * they left it.
 */

export interface StoreUnderTest {
  store: RoomStore
  /** Makes writes for `room` allowed (Redis: this store's lease); a no-op for SQLite. */
  own(room: string): Promise<void>
  /** What a fresh process loads for `room` (after every write so far has landed). */
  reload(room: string): Promise<PersistedRoom | null>
  close(): Promise<void>
}

function clock() {
  let now = 5_000_000
  return { now: () => now, advance: (ms: number) => { now += ms } }
}

function checkpointOf(registry: RoomRegistry, room: string, step: number) {
  const { config } = registry.get(room)!
  const layout = modelLayout(config.model, config.dataset)
  if (!layout.ok) throw new Error(layout.error)
  const values = new Float32Array(layout.paramCount).map((_, i) => ((i % 13) - 6) / 100)
  return { step, schemaHash: layout.schemaHash, params: new Uint8Array(values.buffer) }
}

const report = (step: number, samples: number) => reportSchema.parse({
  v: 1, step, samples, loss: 1, accuracy: 0.5, backend: 'cpu', samplesPerSec: 100, bytesSent: 1000 * step, bytesReceived: 0, neighbors: [],
})

export function roomStoreSuite(open: () => Promise<StoreUnderTest>): void {
  it('a fresh process restores the room: config, host token, run, epoch, history, checkpoint, cooldowns, evictions, pins and credit', async () => {
    const t = await open()
    try {
      const c = clock()
      await t.own('lab')
      const before = new RoomRegistry({ store: t.store, now: c.now })
      const created = before.create({ name: 'lab', config: { ...defaultConfig(), lr: 0.07 }, tokenHash: 'f'.repeat(64) })
      expect(created.ok).toBe(true)
      const room = before.get('lab')!
      for (const id of ['a', 'b', 'c']) {
        expect(before.join('lab', { id, role: 'volunteer', name: `N-${id}` }).ok).toBe(true)
        expect(before.ready(id).ok).toBe(true)
      }
      for (let i = 1; i <= 6; i++) {
        c.advance(HISTORY_SAMPLE_INTERVAL_MS)
        for (const id of ['a', 'b', 'c']) before.report(id, report(10 * i, 320 * i))
      }
      expect(before.pin(room, 'writer', 'b').ok).toBe(true)
      expect(before.setCheckpoint('b', checkpointOf(before, 'lab', 55))).toMatchObject({ ok: true, accepted: true })
      const eviction = before.evict(room, 'c', { reason: 'sent NaN', reporters: ['a', 'b'], basis: 'neighbours' })
      before.persistState(room)
      const saved = await t.reload('lab')
      expect(saved).not.toBeNull()

      const after = new RoomRegistry({ store: t.store, now: c.now })
      after.restore([saved!])
      const back = after.get('lab')!
      expect(back.config.lr).toBe(0.07)
      expect(back.tokenHash).toBe('f'.repeat(64))
      expect(back.code).toBe(room.code)
      expect(after.get(room.code)?.name).toBe('lab')
      expect(back.run).toBe(room.run)
      // The roster starts empty (peers rejoin): a membership change, so the epoch moves on.
      expect(back.roster).toEqual([])
      expect(back.epoch).toBeGreaterThan(room.epoch)
      expect(back.checkpoint?.step).toBe(55)
      expect(Buffer.from(back.checkpoint!.params).equals(Buffer.from(checkpointOf(before, 'lab', 55).params))).toBe(true)
      expect(back.runs.at(-1)!.points.length).toBeGreaterThan(0)
      expect(back.runs.at(-1)!.points.at(-1)!.t).toBe(room.runs.at(-1)!.points.at(-1)!.t)
      expect(back.pinned.writer).toBe('b')
      expect(back.evictions.map((e) => e.peer)).toEqual(['c'])
      // The evicted peer still sits out its cooldown on the new process.
      const again = after.join('lab', { id: 'c', role: 'volunteer' })
      expect(again).toMatchObject({ ok: false, code: 'cooldown' })
      expect(eviction.cooldownMs).toBeGreaterThan(0)
      // Credit survives: a returning volunteer keeps what it contributed.
      expect(after.creditOf(back, 'a')).toBe(before.creditOf(room, 'a'))
      expect(after.creditOf(back, 'a')).toBeGreaterThan(0)
    } finally {
      await t.close()
    }
  })

  it('a new run and a deleted room reach the store: the next process sees run 2 without the old checkpoint, then nothing', async () => {
    const t = await open()
    try {
      const c = clock()
      await t.own('gone')
      const r = new RoomRegistry({ store: t.store, now: c.now })
      expect(r.create({ name: 'gone', config: defaultConfig(), tokenHash: null }).ok).toBe(true)
      r.join('gone', { id: 'a', role: 'volunteer' })
      r.ready('a')
      expect(r.setCheckpoint('a', checkpointOf(r, 'gone', 5))).toMatchObject({ ok: true })
      r.startNewRun(r.get('gone')!, { ...defaultConfig(), lr: 0.2 })
      const saved = await t.reload('gone')
      expect(saved?.run).toBe(2)
      expect(saved?.config.lr).toBe(0.2)
      expect(saved?.runs.map((x) => x.run)).toEqual([1, 2])
      expect(saved?.checkpoint).toBeNull()
      r.leave('a')
      r.remove(r.get('gone')!)
      expect(await t.reload('gone')).toBeNull()
    } finally {
      await t.close()
    }
  })
}
