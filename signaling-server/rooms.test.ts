import { friendlyName } from '../shared/names'
import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../shared/config'
import { modelLayout } from '../shared/model-shapes'
import { reportSchema, type PeerReport } from '../shared/protocol/signaling'
import { HISTORY_SAMPLE_INTERVAL_MS, appendPoint, historyToCsv, newRun, type HistoryPoint } from './history'
import { JOIN_CODE_ALPHABET, JOIN_CODE_LENGTH, makeJoinCode, normalizeJoinCode } from './join-code'
import { CHECKPOINT_MAX_RMS, ROLE_MIN_TENURE_MS, SILENT_AFTER_MS, STRIKES_TO_MUTE, SUSPICION_TTL_MS, VOTE_MUTE_MS } from './trust'
import { LEADERBOARD_SIZE, MAX_LEDGER_ENTRIES, MAX_STEPS_PER_SEC, samplesPerStepCap, CHECKPOINTS_KEPT, CHECKPOINT_KEEP_SPACING_MS, ORPHAN_ROOM_TTL_MS, ROOM_IDLE_TTL_MS, CHECKPOINT_MAX_BYTES, CHECKPOINT_STEP_SLACK_S, CHECKPOINT_STEP_SLACK_STEPS, EVICTION_COOLDOWN_BASE_MS, EVICTION_COOLDOWN_MAX_MS, EVICTION_MEMORY_MS, RoomRegistry, type Checkpoint, type RoomMeta, type RoomStore } from './rooms'

/** A hand-advanced clock and a seeded LCG, so codes and history timestamps are deterministic. */
function setup(store?: RoomStore) {
  let now = 1_000_000
  let seed = 42
  const registry = new RoomRegistry({
    now: () => now,
    randomInt: (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n },
    store,
  })
  return { registry, advance: (ms: number) => { now += ms } }
}

/** Joins as a volunteer and declares ready (enters the roster), as a tab does once loaded. */
function joinReady(registry: RoomRegistry, room: string, peer: Parameters<RoomRegistry['join']>[1]) {
  const r = registry.join(room, peer)
  if (r.ok) registry.ready(peer.id)
  return r
}

/** A checkpoint of the right size and schema for `room`'s model (the default: MNIST MLP). */
function checkpointFor(registry: RoomRegistry, room: string, step: number, fill = 0.25) {
  const { config } = registry.get(room)!
  const layout = modelLayout(config.model, config.dataset)
  if (!layout.ok) throw new Error(layout.error)
  const values = new Float32Array(layout.paramCount).fill(fill)
  return { step, schemaHash: layout.schemaHash, params: new Uint8Array(values.buffer), values }
}

function report(over: Partial<PeerReport> = {}): PeerReport {
  return reportSchema.parse({
    v: 1, step: 10, loss: 1, accuracy: 0.5, backend: 'cpu', samplesPerSec: 100, bytesSent: 0, bytesReceived: 0, neighbors: [], ...over,
  })
}

describe('RoomRegistry membership', () => {
  it('creates a room with the default config on first join and keeps the roster in join order', () => {
    const { registry } = setup()
    const a = joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    expect(a.ok && a.created).toBe(true)
    joinReady(registry, 'lab', { id: 'b', role: 'volunteer' })
    joinReady(registry, 'lab', { id: 'c', role: 'volunteer' })
    const room = registry.get('lab')!
    expect(room.config).toEqual(defaultConfig('dpsgd'))
    expect(room.config.topology).toBe('ring')
    expect(registry.membership(room).peers).toEqual(['a', 'b', 'c'])
  })

  it('bumps the epoch on every join and leave, not on a repeated join or a spectator', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    const room = registry.get('lab')!
    expect(room.epoch).toBe(1)
    const again = joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    expect(again.ok && again.changed).toBe(false)
    registry.join('lab', { id: 's', role: 'spectator' })
    expect(room.epoch).toBe(1)
    joinReady(registry, 'lab', { id: 'b', role: 'volunteer' })
    expect(room.epoch).toBe(2)
    expect(registry.leave('a')?.changed).toBe(true)
    expect(room.epoch).toBe(3)
    expect(registry.leave('s')?.changed).toBe(false)
    expect(room.epoch).toBe(3)
    expect(registry.membership(room).peers).toEqual(['b'])
    expect(registry.leave('nobody')).toBeNull()
  })

  it('refuses a second room for the same peer until it leaves', () => {
    const { registry } = setup()
    joinReady(registry, 'one', { id: 'a', role: 'volunteer' })
    const r = joinReady(registry, 'two', { id: 'a', role: 'volunteer' })
    expect(r.ok).toBe(false)
    expect(registry.get('two')).toBeUndefined()
  })

  it('elects the first peer in join order as PS for asgd and re-elects when it leaves', () => {
    const { registry } = setup()
    const created = registry.create({ name: 'ps', config: defaultConfig('asgd'), tokenHash: null })
    expect(created.ok).toBe(true)
    for (const id of ['a', 'b', 'c']) joinReady(registry, 'ps', { id, role: 'volunteer' })
    const room = registry.get('ps')!
    expect(room.roles.ps).toBe('a')
    registry.leave('b')
    expect(room.roles.ps).toBe('a')
    const before = room.epoch
    registry.leave('a')
    expect(room.roles.ps).toBe('c')
    expect(room.epoch).toBe(before + 1)
    registry.leave('c')
    expect(room.roles.ps).toBeNull()
  })

  it('names no PS for decentralized algorithms', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    expect(registry.get('lab')!.roles.ps).toBeNull()
  })
})

describe('RoomRegistry pending joiners', () => {
  it('keeps a joined volunteer out of the roster until it is ready, then bumps the epoch once', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    const room = registry.get('lab')!
    const epoch = room.epoch
    const j = registry.join('lab', { id: 'b', name: 'Bea', role: 'volunteer' })
    expect(j.ok && j.changed).toBe(false)
    expect(room.roster).toEqual(['a'])
    expect(room.epoch).toBe(epoch)
    expect(registry.view(room).joining).toEqual([expect.objectContaining({ id: 'b', name: 'Bea', stage: 'loading' })])
    expect(registry.view(room).peers.map((p) => p.id)).toEqual(['a'])
    // Nobody can report a peer that is not in the roster yet.
    expect(registry.suspect('a', 'b').ok).toBe(false)
    const r = registry.ready('b')
    expect(r.ok && r.changed).toBe(true)
    expect(room.roster).toEqual(['a', 'b'])
    expect(room.epoch).toBe(epoch + 1)
    expect(registry.view(room).joining).toEqual([])
    const again = registry.ready('b')
    expect(again.ok && again.changed).toBe(false)
    expect(room.epoch).toBe(epoch + 1)
  })

  it('a pending volunteer that leaves changes no membership; spectators and strangers cannot be ready', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    registry.join('lab', { id: 'b', role: 'volunteer' })
    registry.join('lab', { id: 's', role: 'spectator' })
    const epoch = registry.get('lab')!.epoch
    expect(registry.leave('b')?.changed).toBe(false)
    expect(registry.get('lab')!.epoch).toBe(epoch)
    expect(registry.ready('s').ok).toBe(false)
    expect(registry.ready('nobody').ok).toBe(false)
  })
})

describe('RoomRegistry suspects', () => {
  function room(ids: string[], config = defaultConfig()) {
    const s = setup()
    s.registry.create({ name: 'lab', config, tokenHash: null })
    for (const id of ids) joinReady(s.registry, 'lab', { id, role: 'volunteer' })
    return s
  }
  /** Every listed peer reports (a heartbeat the server sees). */
  const heartbeat = (r: RoomRegistry, ids: string[]) => { for (const id of ids) r.report(id, report()) }

  it('only the suspect’s own topology neighbours count, and it takes two of them (a majority) on a ring', () => {
    // ring a-b-c-d-a: c's neighbours are b and d; a never exchanges with c.
    const { registry: r } = room(['a', 'b', 'c', 'd'])
    const notNeighbour = r.suspect('a', 'c')
    expect(notNeighbour).toMatchObject({ ok: false, code: 'not-neighbour' })
    expect(!notNeighbour.ok && notNeighbour.message).toMatch(/^peer: .*only its neighbours/)
    const first = r.suspect('b', 'c')
    expect(first.ok && first.removed).toBe(false)
    const again = r.suspect('b', 'c')
    expect(again.ok && again.removed).toBe(false)
    expect(r.view(r.get('lab')!).peers.find((p) => p.id === 'c')?.suspect).toBe(true)
    const epoch = r.get('lab')!.epoch
    const second = r.suspect('d', 'c')
    expect(second.ok && second.removed).toBe(true)
    expect(second.ok && second.eviction).toMatchObject({ basis: 'neighbours', reporters: ['b', 'd'] })
    expect(r.get('lab')!.roster).toEqual(['a', 'b', 'd'])
    expect(r.get('lab')!.epoch).toBe(epoch + 1)
  })

  it('a pending joiner (joined, never ready) cannot report anyone', () => {
    const { registry: r } = room(['a', 'b', 'c'])
    r.join('lab', { id: 'sock2', role: 'volunteer' })
    expect(r.suspect('sock2', 'b')).toMatchObject({ ok: false, code: 'not-in-roster' })
    expect(r.get('lab')!.peers.get('b')!.suspectedBy.size).toBe(0)
  })

  it('two sockets of one attacker (one in the roster, one pending) cannot evict an honest peer, however often they report', () => {
    // Attack #1: in a 3-peer ring the attacker x is a neighbour of the honest h; its second socket is pending.
    const { registry: r, advance } = room(['h', 'g', 'x'])
    r.join('lab', { id: 'x2', role: 'volunteer' })
    for (let i = 0; i < 50; i++) {
      heartbeat(r, ['h', 'g', 'x'])
      const a = r.suspect('x', 'h', 'missed 5 deadlines')
      expect(a.ok && a.removed).toBe(false)
      expect(r.suspect('x2', 'h').ok).toBe(false)
      advance(1000)
    }
    expect(r.get('lab')!.roster).toEqual(['h', 'g', 'x'])
    expect(r.get('lab')!.evictions).toEqual([])
  })

  it('a reporter whose suspicions do not hold up loses its vote for a while', () => {
    const { registry: r, advance } = room(['h', 'g', 'x'])
    // Each accusation expires while h keeps reporting: a strike; the third one mutes x.
    for (let i = 0; i < STRIKES_TO_MUTE; i++) {
      expect(r.suspect('x', 'h').ok).toBe(true)
      for (let t = 0; t < SUSPICION_TTL_MS; t += 5000) { advance(5000); heartbeat(r, ['h', 'g', 'x']) }
    }
    const muted = r.suspect('x', 'h')
    expect(muted).toMatchObject({ ok: false, code: 'no-vote' })
    // While muted, x's word adds nothing to g's: h stays.
    const g = r.suspect('g', 'h')
    expect(g.ok && g.removed).toBe(false)
    expect(r.get('lab')!.roster).toContain('h')
    advance(VOTE_MUTE_MS)
    heartbeat(r, ['h', 'g', 'x'])
    expect(r.suspect('x', 'h').ok).toBe(true)
  })

  it('with a single neighbour the server’s own observation decides: a silent peer goes, a reporting one stays', () => {
    const { registry: r, advance } = room(['a', 'b'])
    heartbeat(r, ['a', 'b'])
    const alive = r.suspect('a', 'b')
    expect(alive.ok && alive.removed).toBe(false)
    expect(r.get('lab')!.roster).toEqual(['a', 'b'])
    advance(SILENT_AFTER_MS)
    heartbeat(r, ['a'])
    const silent = r.suspect('a', 'b', 'missed 5 deadlines')
    expect(silent.ok && silent.removed).toBe(true)
    expect(silent.ok && silent.eviction).toMatchObject({ basis: 'server', reporters: ['a'] })
    expect(silent.ok && silent.eviction?.evidence).toMatch(/no report from it for 10 s/)
    expect(r.get('lab')!.roster).toEqual(['a'])
  })

  it('a star: the parameter server alone cannot evict a reporting worker; workers need a majority against the server', () => {
    const { registry: r, advance } = room(['ps', 'x', 'y', 'z'], defaultConfig('asgd'))
    expect(r.get('lab')!.roles.ps).toBe('ps')
    heartbeat(r, ['ps', 'x', 'y', 'z'])
    expect(r.suspect('x', 'y')).toMatchObject({ ok: false, code: 'not-neighbour' })
    const leaf = r.suspect('ps', 'x')
    expect(leaf.ok && leaf.removed).toBe(false)
    const one = r.suspect('x', 'ps')
    expect(one.ok && one.removed).toBe(false)
    const two = r.suspect('y', 'ps')
    expect(two.ok && two.removed).toBe(true)
    // The role goes to the longest-serving trusted peer left.
    expect(r.get('lab')!.roles.ps).toBe('x')
    advance(1)
  })

  it('rejects self-reports, unknown peers and reporters outside the room, changing nothing', () => {
    const { registry: r } = room(['a', 'b', 'c'])
    const epoch = r.get('lab')!.epoch
    expect(r.suspect('a', 'a').ok).toBe(false)
    expect(r.suspect('a', 'zz').ok).toBe(false)
    expect(r.suspect('outsider', 'a').ok).toBe(false)
    expect(r.get('lab')!.epoch).toBe(epoch)
    expect(r.view(r.get('lab')!).peers.every((p) => !p.suspect)).toBe(true)
  })

  it('records an eviction with its reason and makes the evicted peer sit out a doubling cooldown', () => {
    const { registry: r, advance } = setup()
    for (const id of ['a', 'b', 'c']) joinReady(r, 'lab', { id, name: id.toUpperCase(), role: 'volunteer' })
    r.suspect('a', 'c', 'rejected 3 messages (last: NaN)')
    const res = r.suspect('b', 'c', 'rejected 6 messages (last: NaN)')
    expect(res.ok && res.removed).toBe(true)
    const view = r.view(r.get('lab')!)
    expect(view.evictions).toHaveLength(1)
    expect(view.evictions[0]).toMatchObject({ peer: 'c', name: 'C', reason: 'rejected 6 messages (last: NaN)', cooldownMs: EVICTION_COOLDOWN_BASE_MS, basis: 'neighbours' })
    expect(view.evictions[0].reporters.sort()).toEqual(['a', 'b'])

    const early = joinReady(r, 'lab', { id: 'c', role: 'volunteer' })
    expect(early.ok).toBe(false)
    expect(!early.ok && early.code).toBe('cooldown')
    expect(!early.ok && early.retryAfterMs).toBe(EVICTION_COOLDOWN_BASE_MS)
    expect(r.get('lab')!.roster).toEqual(['a', 'b'])
    // Spectating is still allowed: only training is refused.
    expect(r.join('lab', { id: 'c', role: 'spectator' }).ok).toBe(true)
    r.leave('c')

    advance(EVICTION_COOLDOWN_BASE_MS)
    expect(joinReady(r, 'lab', { id: 'c', role: 'volunteer' }).ok).toBe(true)
    r.suspect('a', 'c', 'again')
    const second = r.suspect('b', 'c', 'again')
    expect(second.ok && second.eviction?.cooldownMs).toBe(2 * EVICTION_COOLDOWN_BASE_MS)
    advance(EVICTION_COOLDOWN_BASE_MS)
    expect(joinReady(r, 'lab', { id: 'c', role: 'volunteer' }).ok).toBe(false)
    advance(EVICTION_COOLDOWN_BASE_MS)
    expect(joinReady(r, 'lab', { id: 'c', role: 'volunteer' }).ok).toBe(true)
    // Other peers never wait.
    expect(joinReady(r, 'lab', { id: 'd', role: 'volunteer' }).ok).toBe(true)
  })

  it('caps the cooldown and forgets old evictions', () => {
    const { registry: r, advance } = setup()
    joinReady(r, 'lab', { id: 'a', role: 'volunteer' })
    let last = 0
    for (let i = 0; i < 12; i++) {
      expect(joinReady(r, 'lab', { id: 'x', role: 'volunteer' }).ok).toBe(true)
      advance(SILENT_AFTER_MS)
      const res = r.suspect('a', 'x', 'bad')
      last = (res.ok && res.eviction?.cooldownMs) || 0
      advance(last)
    }
    expect(last).toBe(EVICTION_COOLDOWN_MAX_MS)
    expect(r.view(r.get('lab')!).evictions.length).toBeLessThanOrEqual(10)
    advance(EVICTION_MEMORY_MS)
    joinReady(r, 'lab', { id: 'x', role: 'volunteer' })
    advance(SILENT_AFTER_MS)
    const fresh = r.suspect('a', 'x', 'bad')
    expect(fresh.ok && fresh.eviction?.cooldownMs).toBe(EVICTION_COOLDOWN_BASE_MS)
  })

  it('a reporter that leaves no longer counts', () => {
    const { registry: r } = room(['a', 'b', 'c', 'd'])
    r.suspect('b', 'c')
    r.leave('b')
    // Now a ring a-c-d: c's neighbours are a and d; b's old word is gone.
    const res = r.suspect('d', 'c')
    expect(res.ok && res.removed).toBe(false)
  })
})

describe('roles', () => {
  it('a later joiner does not take a role while longer-serving peers stay', () => {
    const { registry: r, advance } = setup()
    r.create({ name: 'lab', config: defaultConfig('asgd'), tokenHash: null })
    for (const id of ['a', 'b', 'c']) { joinReady(r, 'lab', { id, role: 'volunteer' }); advance(1000) }
    advance(60_000)
    for (const id of ['a', 'b', 'c']) r.report(id, report({ step: 100 }))
    joinReady(r, 'lab', { id: 'x', role: 'volunteer' })
    r.report('x', report({ step: 1e6 }))
    const room = r.get('lab')!
    expect(room.roles).toEqual({ ps: 'a', writer: 'a' })
    r.leave('a')
    expect(room.roles).toEqual({ ps: 'b', writer: 'b' })
    r.leave('b')
    expect(room.roles).toEqual({ ps: 'c', writer: 'c' })
  })

  it('prefers peers with tenure and steps, and moves a role off a suspected holder at the next change', () => {
    const { registry: r, advance } = setup()
    r.create({ name: 'lab', config: defaultConfig('asgd'), tokenHash: null })
    for (const id of ['a', 'b', 'c', 'd']) joinReady(r, 'lab', { id, role: 'volunteer' })
    const room = r.get('lab')!
    advance(ROLE_MIN_TENURE_MS)
    // b has not contributed a step: c, the next with tenure and steps, is preferred.
    for (const id of ['a', 'c', 'd']) r.report(id, report({ step: 50 }))
    r.report('b', report({ step: 0 }))
    expect(r.suspect('b', 'a').ok).toBe(true) // a is the star centre: every worker is its neighbour
    joinReady(r, 'lab', { id: 'e', role: 'volunteer' })
    expect(room.roles.ps).toBe('c')
    expect(room.roles.writer).toBe('c')
  })

  it('a host pins a role to a roster peer and unpins it; a PS only where the algorithm has one', () => {
    const { registry: r } = setup()
    r.create({ name: 'lab', config: defaultConfig('asgd'), tokenHash: null })
    for (const id of ['a', 'b', 'c']) joinReady(r, 'lab', { id, role: 'volunteer' })
    const room = r.get('lab')!
    const epoch = room.epoch
    expect(r.pin(room, 'ps', 'c')).toEqual({ ok: true })
    expect(r.pin(room, 'writer', 'b')).toEqual({ ok: true })
    expect(room.roles).toEqual({ ps: 'c', writer: 'b' })
    expect(room.epoch).toBe(epoch + 2)
    expect(r.view(room).roles).toEqual({ ps: 'c', writer: 'b', pinned: { ps: 'c', writer: 'b' } })
    // A pin survives joins and leaves of others.
    r.leave('a')
    expect(room.roles).toEqual({ ps: 'c', writer: 'b' })
    expect(r.pin(room, 'ps', 'zz')).toMatchObject({ ok: false, code: 'unknown-peer' })
    expect(r.pin(room, 'ps', null)).toEqual({ ok: true })
    expect(room.roles.ps).toBe('b')
    const ring = setup().registry
    joinReady(ring, 'lab', { id: 'a', role: 'volunteer' })
    expect(ring.pin(ring.get('lab')!, 'ps', 'a')).toMatchObject({ ok: false, code: 'bad-request' })
  })
})

describe('run history', () => {
  it('samples at most once per interval and aggregates over reporting peers', () => {
    const { registry, advance } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    joinReady(registry, 'lab', { id: 'b', role: 'volunteer' })
    advance(2000)
    // Two reports in the same second: only the first samples (then with one peer). step < globalStep here.
    expect(registry.report('a', report({ step: 1, loss: 2, accuracy: 0.2, globalStep: 5, bytesSent: 100, lr: 0.1 }))?.sample).not.toBeNull()
    expect(registry.report('b', report({ step: 1, loss: 1, accuracy: 0.4, globalStep: 7, bytesSent: 50, lr: 0.3 }))?.sample).toBeNull()
    advance(HISTORY_SAMPLE_INTERVAL_MS)
    const p = registry.report('a', report({ step: 1, loss: 3, accuracy: 0.6, globalStep: 6, bytesSent: 300, lr: 0.1 }))!.sample!
    // mean loss (3+1)/2 = 2, mean accuracy (0.6+0.4)/2 = 0.5, max globalStep 7,
    // bytes = 100 + 50 + (300-100) = 350, mean lr (0.1+0.3)/2 = 0.2, t = 3 s after creation.
    expect(p).toEqual({ t: 3, loss: 2, accuracy: 0.5, globalStep: 7, bytes: 350, peers: 2, lr: expect.closeTo(0.2, 10), h: null, consensus: null })
    expect(registry.currentRun(registry.get('lab')!).points).toHaveLength(2)
  })

  it('thins a long series instead of growing without bound', () => {
    const run = newRun(1, defaultConfig(), 0)
    const point = (t: number): HistoryPoint => ({ t, loss: null, accuracy: null, globalStep: t, bytes: 0, peers: 1, lr: null, h: null, consensus: null })
    for (let t = 0; t < 10; t++) appendPoint(run, point(t), 8)
    expect(run.points.length).toBeLessThan(8)
    expect(run.intervalMs).toBe(2 * HISTORY_SAMPLE_INTERVAL_MS)
    expect(run.points[0].t).toBe(0)
  })

  it('new-run keeps old runs, clears reports and the checkpoint, and bumps run and epoch', () => {
    const { registry, advance } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    registry.report('a', report())
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', 3))).toMatchObject({ ok: true, accepted: true })
    const room = registry.get('lab')!
    const epoch = room.epoch
    advance(10)
    registry.startNewRun(room, defaultConfig('asgd'))
    expect(room.run).toBe(2)
    expect(room.epoch).toBe(epoch + 1)
    // Everyone reloads for the new run: pending until ready again.
    expect(room.roster).toEqual([])
    expect(room.roles.ps).toBeNull()
    expect(registry.view(room).joining.map((p) => p.id)).toEqual(['a'])
    expect(registry.ready('a')).toMatchObject({ ok: true, changed: true })
    expect(room.roles.ps).toBe('a')
    expect(room.checkpoint).toBeNull()
    expect(room.runs.map((r) => [r.run, r.config.algorithm])).toEqual([[1, 'dpsgd'], [2, 'asgd']])
    expect(registry.view(room).peers[0].loss).toBeNull()
    expect(historyToCsv(room.runs).split('\n')[0]).toBe('run,algorithm,t,loss,accuracy,globalStep,bytes,peers,lr,h,consensus')
  })
})

describe('divergence', () => {
  const diverged = (step: number) => report({ step, globalStep: step, stage: 'diverged', loss: 40, diverged: { step, loss: 40, reason: 'the mean training loss grew from 2.300 to 40.000 (limit 23.000)' } })

  it('pauses the room when half of the roster reports a diverged model, records it in the run, and a new run clears it', () => {
    const saved: unknown[] = []
    const store: RoomStore = { saveRoom: () => {}, saveRun: (_room, r) => void saved.push(r), appendPoint: () => {}, saveCheckpoint: () => {}, deleteCheckpoint: () => {}, deleteRoom: () => {}, saveSafety: () => {} }
    const { registry, advance } = setup(store)
    for (const id of ['a', 'b', 'c', 'd']) joinReady(registry, 'lab', { id, role: 'volunteer' })
    const room = registry.get('lab')!
    // One peer whose own model blew up is left to its neighbours: no pause.
    expect(registry.report('a', diverged(60))!.diverged).toBe(false)
    expect(room.paused).toBe(false)
    expect(registry.membership(room).diverged).toBeNull()
    // A stage without the verdict (an older client) counts for nothing.
    expect(registry.report('c', report({ stage: 'diverged' }))!.diverged).toBe(false)
    advance(1000)
    // The second of four: the swarm diverged. The earliest step is the run's.
    const r = registry.report('b', diverged(62))!
    expect(r.diverged).toBe(true)
    expect(room.paused).toBe(true)
    const mark = { step: 60, at: 1_001_000, loss: 40, reason: expect.stringContaining('grew from 2.300') }
    expect(registry.membership(room).diverged).toEqual(mark)
    expect(registry.view(room).diverged).toEqual(mark)
    expect(registry.currentRun(room).diverged).toEqual(mark)
    expect(saved.at(-1)).toMatchObject({ run: 1, diverged: mark })
    // Announced once.
    expect(registry.report('d', diverged(63))!.diverged).toBe(false)
    registry.startNewRun(room, { ...room.config, lr: room.config.lr / 3 })
    expect(room.paused).toBe(false)
    expect(registry.membership(room).diverged).toBeNull()
    expect(room.runs[0].diverged).toEqual(mark)
  })

  it('a two-peer room pauses on one report; a peer outside the roster cannot pause it', () => {
    const { registry } = setup()
    joinReady(registry, 'duo', { id: 'a', role: 'volunteer' })
    joinReady(registry, 'duo', { id: 'b', role: 'volunteer' })
    registry.join('duo', { id: 'late', role: 'volunteer' })
    expect(registry.report('late', diverged(5))!.diverged).toBe(false)
    expect(registry.get('duo')!.paused).toBe(false)
    expect(registry.report('a', diverged(5))!.diverged).toBe(true)
  })
})

describe('room expiry', () => {
  it('deletes empty rooms after the idle time (a volunteer-created one after 10 min), never one with people in it', () => {
    const deleted: string[] = []
    const store: RoomStore = {
      saveRoom: () => {}, saveRun: () => {}, appendPoint: () => {}, saveCheckpoint: () => {}, deleteCheckpoint: () => {},
      deleteRoom: (room) => void deleted.push(room), saveSafety: () => {},
    }
    const { registry, advance } = setup(store)
    const hosted = registry.create({ name: 'hosted', config: defaultConfig(), tokenHash: 'x' })
    expect(hosted.ok).toBe(true)
    joinReady(registry, 'walk-in', { id: 'a', role: 'volunteer' })
    joinReady(registry, 'busy', { id: 'b', role: 'volunteer' })
    registry.leave('a')
    advance(ORPHAN_ROOM_TTL_MS)
    expect(registry.expire()).toEqual(['walk-in'])
    expect(registry.get('walk-in')).toBeUndefined()
    advance(ROOM_IDLE_TTL_MS)
    // 'busy' still has a volunteer: kept however old.
    expect(registry.expire()).toEqual(['hosted'])
    expect(deleted).toEqual(['walk-in', 'hosted'])
    expect(registry.list().map((r) => r.name)).toEqual(['busy'])
    // The name and code are free again.
    expect(registry.create({ name: 'hosted', config: defaultConfig(), tokenHash: 'y' }).ok).toBe(true)
  })

  it("a join that would create a room asks the caller's budget first", () => {
    const { registry } = setup()
    const r = registry.join('new-room', { id: 'a', role: 'volunteer' }, { mayCreate: () => false })
    expect(r).toMatchObject({ ok: false, code: 'rate-limited' })
    expect(registry.get('new-room')).toBeUndefined()
    joinReady(registry, 'old-room', { id: 'b', role: 'volunteer' })
    // Joining a room that exists costs nothing.
    expect(registry.join('old-room', { id: 'c', role: 'volunteer' }, { mayCreate: () => false }).ok).toBe(true)
  })
})

describe('checkpoints', () => {
  it('the writer’s newest checkpoint is current; earlier ones are kept (one per spacing) for a rollback', () => {
    const { registry, advance } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    const room = registry.get('lab')!
    expect(room.roles.writer).toBe('a')
    const upload = (step: number, fill: number) => registry.setCheckpoint('a', checkpointFor(registry, 'lab', step, fill))
    expect(upload(5, 0.25)).toMatchObject({ ok: true, accepted: true })
    const first = room.checkpoint!
    // An earlier step from the writer is still its newest model (it may have restarted from one).
    advance(20_000)
    expect(upload(4, 0.3)).toMatchObject({ ok: true, accepted: true })
    expect(room.checkpoint?.step).toBe(4)
    expect(room.olderCheckpoints).toEqual([first])
    // Within the spacing, the current is replaced and nothing more is kept: a flood of uploads cannot push the kept ones out.
    for (let i = 0; i < 10; i++) { advance(2000); expect(upload(10 + i, 0.3)).toMatchObject({ ok: true }) }
    expect(room.olderCheckpoints.map((c) => c.step)).toEqual([5])
    for (let i = 0; i < 8; i++) { advance(CHECKPOINT_KEEP_SPACING_MS); upload(100 + i, 0.3) }
    expect(room.olderCheckpoints).toHaveLength(CHECKPOINTS_KEPT)
    const view = registry.view(room).checkpoints
    expect(view).toHaveLength(CHECKPOINTS_KEPT + 1)
    expect(view.filter((c) => c.current).map((c) => c.step)).toEqual([107])
    expect(view.every((c) => c.by === 'a' && c.run === 1)).toBe(true)

    // Rollback: to a named one (everything newer goes), then one back by default.
    const target = room.olderCheckpoints[2]
    expect(registry.rollback(room, target.savedAt)).toMatchObject({ ok: true, checkpoint: target })
    expect(room.checkpoint).toBe(target)
    expect(room.olderCheckpoints).toHaveLength(2)
    const back = registry.rollback(room)
    expect(back.ok && back.checkpoint.step).toBe(room.checkpoint!.step)
    expect(room.olderCheckpoints).toHaveLength(1)
    expect(registry.rollback(room, 12345)).toMatchObject({ ok: false, code: 'unknown-checkpoint' })
    registry.rollback(room)
    expect(registry.rollback(room)).toMatchObject({ ok: false, code: 'unknown-checkpoint' })
  })

  it('refuses checkpoints from a non-writer, of the wrong size or schema, non-finite, implausible, or with a made-up step; nothing changes', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    joinReady(registry, 'lab', { id: 'b', role: 'volunteer' })
    joinReady(registry, 'lab', { id: 'c', role: 'volunteer' })
    registry.join('lab', { id: 'pending', role: 'volunteer' })
    registry.join('lab', { id: 's', role: 'spectator' })
    const room = registry.get('lab')!
    registry.report('a', report({ step: 90, globalStep: 100, stepsPerSec: 10 }))
    registry.report('b', report({ step: 80, globalStep: 95, stepsPerSec: 4 }))
    // c claims a step far ahead: the median, not the furthest, bounds checkpoints.
    registry.report('c', report({ step: 1e6, globalStep: 1e6, stepsPerSec: 1e6 }))
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', 50))).toMatchObject({ ok: true, accepted: true })
    const kept = room.checkpoint

    const good = checkpointFor(registry, 'lab', 60)
    const nan = checkpointFor(registry, 'lab', 60)
    nan.values[1234] = Number.NaN
    const inf = checkpointFor(registry, 'lab', 60)
    inf.values[nan.values.length - 1] = Number.POSITIVE_INFINITY
    // Median reported step 100 (c's is cut to what the run's age allows: 1000 + 0 s × 1000/s), median rate 10: 100 + 1000 + 5 s × 10.
    const limit = 100 + CHECKPOINT_STEP_SLACK_STEPS + CHECKPOINT_STEP_SLACK_S * 10
    const refusals: Array<[string, string, Parameters<RoomRegistry['setCheckpoint']>[1]]> = [
      ['b', 'not-expected', good],
      ['pending', 'not-in-roster', good],
      ['s', 'not-joined', good],
      ['nobody', 'not-joined', good],
      ['a', 'bad-length', { ...good, params: good.params.subarray(4) }],
      ['a', 'bad-length', { ...good, params: new Uint8Array(8) }],
      ['a', 'too-large', { ...good, params: new Uint8Array(CHECKPOINT_MAX_BYTES + 1) }],
      ['a', 'bad-schema', { ...good, schemaHash: 'mlp-00000000' }],
      ['a', 'non-finite', nan],
      ['a', 'non-finite', inf],
      ['a', 'bad-step', checkpointFor(registry, 'lab', limit + 1)],
      // Attack #3's parameters: finite float32, absurd.
      ['a', 'implausible', checkpointFor(registry, 'lab', 60, 3.0e38)],
      // Norm 6× / 0× the previous checkpoint's (0.25 everywhere).
      ['a', 'implausible', checkpointFor(registry, 'lab', 60, 1.5)],
      ['a', 'implausible', checkpointFor(registry, 'lab', 60, 0)],
    ]
    for (const [peer, code, cp] of refusals) {
      const r = registry.setCheckpoint(peer, cp)
      expect(r, `${peer} → ${code}`).toMatchObject({ ok: false, code })
      if (!r.ok) expect(r.message.length).toBeGreaterThan(10)
      expect(room.checkpoint).toBe(kept)
    }
    // The bound itself is accepted, and so is a model that moved a plausible amount.
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', limit, 0.5))).toMatchObject({ ok: true, accepted: true })
    expect(room.checkpoint?.step).toBe(limit)
  })

  it('the first checkpoint of a run must look like a trained model (RMS bound)', () => {
    const { registry } = setup()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', 1, CHECKPOINT_MAX_RMS * 2))).toMatchObject({ ok: false, code: 'implausible' })
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', 1, 0.01))).toMatchObject({ ok: true, accepted: true })
  })
})

describe('away (paused or hidden tabs)', () => {
  it('takes the peer out of the roster with a new epoch, keeps it joined, and ready() brings it back', () => {
    const { registry } = setup()
    for (const id of ['a', 'b', 'c']) joinReady(registry, 'lab', { id, role: 'volunteer' })
    const room = registry.get('lab')!
    registry.suspect('a', 'b', 'slow')
    expect(room.peers.get('b')!.suspectedBy.size).toBe(1)
    const epoch = room.epoch
    expect(registry.away('b', 'paused')).toMatchObject({ ok: true, changed: true })
    expect(room.roster).toEqual(['a', 'c'])
    expect(room.epoch).toBe(epoch + 1)
    expect(room.peers.has('b')).toBe(true)
    expect(registry.view(room).joining).toEqual([expect.objectContaining({ id: 'b', stage: 'paused', away: 'paused' })])
    // Neighbours can no longer report it, and stepping out is not an eviction.
    expect(registry.suspect('a', 'b', 'slow')).toMatchObject({ ok: false, code: 'unknown-peer' })
    expect(room.evictions).toEqual([])
    expect(room.cooldowns.size).toBe(0)
    // A repeat (hidden while paused) changes nothing but the reason.
    expect(registry.away('b', 'hidden')).toMatchObject({ ok: true, changed: false })
    expect(room.epoch).toBe(epoch + 1)
    expect(registry.view(room).joining[0].away).toBe('hidden')
    expect(registry.ready('b')).toMatchObject({ ok: true, changed: true })
    expect(room.roster).toEqual(['a', 'c', 'b'])
    expect(room.epoch).toBe(epoch + 2)
    expect(room.peers.get('b')!.suspectedBy.size).toBe(0)
    expect(registry.view(room).joining).toEqual([])
  })

  it('hands the parameter-server role on when the server steps out, and refuses spectators', () => {
    const { registry } = setup()
    registry.create({ name: 'ps', config: defaultConfig('asgd'), tokenHash: null })
    joinReady(registry, 'ps', { id: 'a', role: 'volunteer' })
    joinReady(registry, 'ps', { id: 'b', role: 'volunteer' })
    registry.join('ps', { id: 's', role: 'spectator' })
    const room = registry.get('ps')!
    expect(room.roles.ps).toBe('a')
    registry.away('a', 'hidden')
    expect(room.roles.ps).toBe('b')
    expect(registry.away('s', 'paused')).toMatchObject({ ok: false, code: 'not-joined' })
    expect(registry.away('nobody', 'paused')).toMatchObject({ ok: false, code: 'not-joined' })
  })
})

describe('credit ledger', () => {
  /** A room whose clock advances 1 s per report, as a tab's reports do every 500 ms or so. */
  function lab() {
    const { registry, advance } = setup()
    registry.create({ name: 'lab', config: defaultConfig(), tokenHash: null })
    const room = registry.get('lab')!
    const send = (id: string, step: number, samples: number) => {
      advance(1000)
      return registry.report(id, report({ step, samples }))
    }
    return { registry, room, advance, send }
  }

  it('credits the growth of a volunteer\'s counters and keeps it across a reload (same id, counters from zero)', () => {
    const { registry, room, send } = lab()
    joinReady(registry, 'lab', { id: 'k', role: 'volunteer', name: 'Ada' })
    send('k', 10, 320)
    send('k', 20, 640)
    expect(registry.creditOf(room, 'k')).toBe(640)
    // The reload: the old connection leaves, the same id joins again and counts from zero.
    registry.leave('k')
    joinReady(registry, 'lab', { id: 'k', role: 'volunteer', name: 'Ada L.' })
    send('k', 5, 160)
    expect(registry.creditOf(room, 'k')).toBe(800)
    const view = registry.view(room)
    expect(view.peers.find((p) => p.id === 'k')?.samples).toBe(800)
    expect(view.leaderboard).toEqual([{ id: 'k', name: 'Ada L.', samples: 800, share: 1 }])
  })

  it('keeps the count through an away and back (the tab restarts its run counters)', () => {
    const { registry, room, send } = lab()
    joinReady(registry, 'lab', { id: 'p', role: 'volunteer' })
    send('p', 30, 960)
    registry.away('p', 'hidden')
    // The report sent while away repeats the old counters: nothing more, nothing less.
    send('p', 30, 960)
    expect(registry.creditOf(room, 'p')).toBe(960)
    registry.ready('p')
    send('p', 2, 64)
    expect(registry.creditOf(room, 'p')).toBe(1024)
    expect(registry.standing(room, 'p')).toEqual({ samples: 1024, rank: 1, of: 1, share: 1, total: 1024, neighbours: [] })
  })

  it('starts at zero with a new run, and a late report of the old run adds nothing', () => {
    const { registry, room, send } = lab()
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    send('a', 50, 1600)
    registry.startNewRun(room)
    expect(registry.view(room).leaderboard).toEqual([])
    expect(registry.creditOf(room, 'a')).toBe(0)
    send('a', 50, 1600)
    expect(registry.creditOf(room, 'a')).toBe(0)
    registry.ready('a')
    send('a', 3, 96)
    expect(registry.creditOf(room, 'a')).toBe(96)
  })

  it('caps an implausible jump: at most a minibatch per reported step, and no more steps than time allows', () => {
    const { registry, room, send, advance } = lab()
    joinReady(registry, 'lab', { id: 'x', role: 'volunteer' })
    const batch = room.config.batchSize
    // 1e9 samples claimed for 10 steps: 10 minibatches count.
    send('x', 10, 1e9)
    expect(registry.creditOf(room, 'x')).toBe(10 * batch)
    // A step counter that jumps is cut to the fastest believable rate since the last report.
    advance(9_000)
    send('x', 10 + 1e6, 2e9)
    expect(registry.creditOf(room, 'x')).toBe(10 * batch + 10 * MAX_STEPS_PER_SEC * batch)
    // Alternating counters (every report a "restart") gain no more than the steps they claim.
    const before = registry.creditOf(room, 'x')
    send('x', 0, 0)
    send('x', 2, 5e6)
    expect(registry.creditOf(room, 'x')).toBe(before + 2 * batch)
  })

  it('allows a LAP-SGD step its averaging period of minibatches', () => {
    const config = { ...defaultConfig('lap-sgd'), sync: { kind: 'constant' as const, h: 8 } }
    expect(samplesPerStepCap(config)).toBe(8 * config.batchSize)
    expect(samplesPerStepCap(defaultConfig('dpsgd'))).toBe(defaultConfig('dpsgd').batchSize)
  })

  it('ranks by samples, keeps volunteers that left, and shares add up to one', () => {
    const { registry, room, send } = lab()
    for (const id of ['a', 'b', 'c']) joinReady(registry, 'lab', { id, role: 'volunteer', name: id.toUpperCase() })
    send('a', 10, 100)
    send('b', 10, 300)
    send('c', 10, 200)
    registry.leave('b')
    const board = registry.view(room).leaderboard
    expect(board.map((e) => e.id)).toEqual(['b', 'c', 'a'])
    expect(board.reduce((s, e) => s + e.share, 0)).toBeCloseTo(1)
    expect(registry.standing(room, 'c')).toMatchObject({ rank: 2, of: 3, samples: 200, total: 600 })
    expect(registry.standing(room, 'nobody')).toMatchObject({ rank: 0, samples: 0 })
    expect(registry.view(room).peers.map((p) => p.id)).toEqual(['a', 'c'])
  })

  it('holds at most MAX_LEDGER_ENTRIES, forgetting the smallest absent ones, and shows the top LEADERBOARD_SIZE', () => {
    const { registry, room, send } = lab()
    joinReady(registry, 'lab', { id: 'stay', role: 'volunteer' })
    send('stay', 1, 1)
    for (let i = 0; i < MAX_LEDGER_ENTRIES + 5; i++) {
      const id = `v${i}`
      joinReady(registry, 'lab', { id, role: 'volunteer' })
      send(id, 10, 10 + (i % 50))
      registry.leave(id)
    }
    expect(room.ledger.size).toBe(MAX_LEDGER_ENTRIES)
    // The present volunteer with the smallest count is kept; the run's total keeps every sample.
    expect(registry.creditOf(room, 'stay')).toBe(1)
    let total = 1
    for (let i = 0; i < MAX_LEDGER_ENTRIES + 5; i++) total += 10 + (i % 50)
    expect(registry.standing(room, 'stay').total).toBe(total)
    const board = registry.view(room).leaderboard
    expect(board).toHaveLength(LEADERBOARD_SIZE)
    expect(board[0].samples).toBe(59)
  })

  it('normalises names: one short line, no control characters', () => {
    const { registry, room } = lab()
    joinReady(registry, 'lab', { id: 'n', role: 'volunteer', name: '  <b>Ada</b>\n\u202eLovelace\u0000  ' })
    expect(room.peers.get('n')!.name).toBe('<b>Ada</b> Lovelace')
    // Nothing left after normalising: the friendly default of its id, as a tab would pick.
    joinReady(registry, 'lab', { id: 'm', role: 'volunteer', name: ' \t\n ' })
    expect(room.peers.get('m')!.name).toBe(friendlyName('m'))
  })
})

describe('join codes', () => {
  it('are 6 unambiguous characters and resolve in any case with separators', () => {
    const code = makeJoinCode((n) => n - 1)
    expect(code).toHaveLength(JOIN_CODE_LENGTH)
    for (const ambiguous of '01OIL') expect(JOIN_CODE_ALPHABET).not.toContain(ambiguous)
    expect(normalizeJoinCode('ab c-23d')).toBe('ABC23D')
    expect(normalizeJoinCode('abc23')).toBeNull()
    expect(normalizeJoinCode('OOOOOO')).toBeNull()
  })

  it('POST-created rooms are named by a unique code and found by it case-insensitively', () => {
    const { registry } = setup()
    const codes = new Set<string>()
    for (let i = 0; i < 50; i++) {
      const r = registry.create({ config: defaultConfig(), tokenHash: 'x' })
      if (!r.ok) throw new Error(r.message)
      codes.add(r.room.code)
      expect(r.room.name).toBe(r.room.code)
      expect(registry.get(r.room.code.toLowerCase())).toBe(r.room)
    }
    expect(codes.size).toBe(50)
    const joined = registry.join([...codes][0].toLowerCase(), { id: 'p', role: 'volunteer' })
    expect(joined.ok && !joined.created).toBe(true)
  })
})

describe('persistence seam', () => {
  it('writes durable changes to the store and restores rooms with an empty roster and a later epoch', () => {
    const rooms = new Map<string, RoomMeta>()
    const checkpoints = new Map<string, Checkpoint>()
    const store: RoomStore = {
      saveRoom: (m) => rooms.set(m.name, { ...m }),
      saveRun: () => {},
      appendPoint: () => {},
      saveCheckpoint: (room, cp) => checkpoints.set(room, cp),
      deleteCheckpoint: (room) => checkpoints.delete(room),
      deleteRoom: (room) => void (rooms.delete(room), checkpoints.delete(room)),
      saveSafety: () => {},
    }
    const { registry } = setup(store)
    joinReady(registry, 'lab', { id: 'a', role: 'volunteer' })
    expect(registry.setCheckpoint('a', checkpointFor(registry, 'lab', 7))).toMatchObject({ ok: true, accepted: true })
    registry.setPaused(registry.get('lab')!, true)
    const meta = rooms.get('lab')!
    expect(meta).toMatchObject({ paused: true, epoch: 1, run: 1 })

    const fresh = setup().registry
    fresh.restore([{ ...meta, runs: [], checkpoint: checkpoints.get('lab') ?? null }])
    const room = fresh.get(meta.code)!
    expect(room.name).toBe('lab')
    expect(room.roster).toEqual([])
    expect(room.epoch).toBeGreaterThan(meta.epoch)
    expect(room.paused).toBe(true)
    expect(fresh.view(room).checkpointStep).toBe(7)
  })
})
