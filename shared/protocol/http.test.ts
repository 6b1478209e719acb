import { describe, expect, it } from 'vitest'
import { RoomRegistry } from '../../signaling-server/rooms'
import { defaultConfig, roomConfigSchema } from '../config'
import { clientHistorySchema, clientPeerSchema, clientRoomSchema, CONTROL_ACTIONS, controlActionSchema, controlRequestSchema, roomResponseSchema, roomViewSchema, type ControlAction } from './http'
import { historyResponseSchema } from './history'
import { membershipSchema, reportSchema } from './signaling'

/**
 * The types in http.ts make the server's bodies compile against the schemas; these tests check
 * what types cannot: that a real room view passes the schemas' value rules, and that the
 * dashboard's schemas accept what an older server sent while the exact ones refuse it.
 */

/** A room with two volunteers in the roster (one diverged), one still loading and a spectator. */
function liveView() {
  const registry = new RoomRegistry({ now: () => 1_000 })
  registry.join('lab', { id: 'a', role: 'volunteer', name: 'Ada', agent: 'node' })
  registry.ready('a')
  registry.join('lab', { id: 'b', role: 'volunteer' })
  registry.ready('b')
  registry.join('lab', { id: 'c', role: 'volunteer' })
  registry.join('lab', { id: 's', role: 'spectator' })
  const base = { v: 1, step: 3, loss: 0.5, accuracy: 0.9, backend: 'wasm', samplesPerSec: 10, bytesSent: 1, bytesReceived: 2 }
  registry.report('a', reportSchema.parse({ ...base, neighbors: ['b'], links: { b: { sent: 1, received: 2 } }, computeThread: 'worker' }))
  registry.report('b', reportSchema.parse({ ...base, neighbors: ['a'], stage: 'diverged', diverged: { step: 3, loss: null, reason: 'loss is not finite' } }))
  return registry.view(registry.get('lab')!)
}

const links = { joinUrl: 'http://x/?room=lab', dashboardUrl: 'http://x/room/lab', projectorUrl: 'http://x/projector/lab', publicUrl: 'http://x', localOnly: true }

describe('room view contract', () => {
  it("the server's view passes the exact schema unchanged, and the dashboard's", () => {
    const view = liveView()
    expect(view.diverged).toMatchObject({ step: 3, reason: 'loss is not finite' })
    expect(view.joining).toHaveLength(1)
    expect(roomViewSchema.parse(view)).toEqual(view)
    expect(roomResponseSchema.parse({ ...view, ...links })).toEqual({ ...view, ...links })
    expect(clientRoomSchema.parse({ ...view, ...links })).toEqual({ ...view, ...links })
  })

  it("the dashboard reads an older server's room without the fields added since; the exact schema refuses it", () => {
    const old = {
      room: 'lab', config: defaultConfig('dpsgd'),
      peers: [{ id: 'a', step: 1, loss: null, accuracy: null, backend: null, samplesPerSec: 0, bytesSent: 0, bytesReceived: 0, neighbors: [] }],
    }
    expect(clientRoomSchema.safeParse(old).success).toBe(true)
    expect(roomResponseSchema.safeParse(old).success).toBe(false)
  })

  it("a page loaded before the server gained a config field still reads the room and the membership", () => {
    const view = liveView()
    const newer = { ...view, ...links, config: { ...view.config, someFutureField: 3 } }
    expect(roomResponseSchema.safeParse(newer).success).toBe(false)
    expect(clientRoomSchema.parse(newer).config).toMatchObject({ algorithm: 'dpsgd', someFutureField: 3 })
    const m = { v: 1, room: 'lab', epoch: 1, peers: ['a'], roles: { ps: null }, config: { ...defaultConfig(), someFutureField: 3 }, run: 1, paused: false }
    expect(membershipSchema.safeParse(m).success).toBe(true)
    // A stored config from before `robust` existed reads as robust 'off'.
    const { robust, ...older } = defaultConfig()
    void robust
    expect(roomConfigSchema.parse(older).robust).toBe('off')
  })

  it('shows a backend or stage this client does not know yet as it is', () => {
    const peer = { id: 'a', step: 1, loss: null, accuracy: null, backend: 'webnn', stage: 'warming-up', samplesPerSec: 0, bytesSent: 0, bytesReceived: 0, neighbors: [] }
    expect(clientPeerSchema.parse(peer)).toMatchObject({ backend: 'webnn', stage: 'warming-up' })
  })
})

describe('control contract', () => {
  const bodies: ControlAction[] = [
    { action: 'start' }, { action: 'pause' }, { action: 'resume' }, { action: 'reset' },
    { action: 'new-run', config: { algorithm: 'ssgd', lr: 0.1 } },
    { action: 'kick', peer: 'p' }, { action: 'disconnect', peer: 'p' },
    { action: 'slow', peer: 'p', factor: 4 }, { action: 'latency', peer: 'p', ms: 200 },
    { action: 'rollback' }, { action: 'rollback', savedAt: 1_700_000_000_000 },
    { action: 'pin', role: 'writer', peer: 'p' }, { action: 'pin', role: 'ps' },
  ]

  it("every action's body, as a client sends it, passes the server's request schema", () => {
    expect(new Set(bodies.map((b) => b.action))).toEqual(new Set(CONTROL_ACTIONS))
    for (const b of bodies) {
      expect(controlActionSchema.parse(b)).toEqual(b)
      expect(controlRequestSchema.safeParse(b).success).toBe(true)
    }
  })

  it('leaves a missing per-action field to the server, which names it itself', () => {
    expect(controlRequestSchema.safeParse({ action: 'slow', peer: 'p' }).success).toBe(true)
    expect(controlActionSchema.safeParse({ action: 'slow', peer: 'p' }).success).toBe(false)
    expect(controlRequestSchema.safeParse({ action: 'fly' }).success).toBe(false)
  })
})

describe('history contract', () => {
  it("the dashboard needs only the runs; a run from before divergence tracking reads as not diverged", () => {
    const run = { run: 1, config: defaultConfig('dpsgd'), started: 0, points: [] }
    const body = { room: 'lab', runs: [run] }
    expect(clientHistorySchema.parse(body).runs[0].diverged).toBeNull()
    expect(historyResponseSchema.safeParse(body).success).toBe(false)
    expect(historyResponseSchema.safeParse({ ...body, code: 'ABC', currentRun: 1 }).success).toBe(true)
  })
})
