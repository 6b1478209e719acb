import { io, type Socket } from 'socket.io-client'
import {
  applyMembershipDelta, membershipDeltaSchema, membershipSchema, relayedSignalSchema, serverErrorSchema,
  type MembershipAnnouncement,
} from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'

/**
 * A volunteer's signaling traffic without WebRTC or a model, for bench/signaling.ts: a real
 * socket.io client that joins (role volunteer, membership as deltas, as client/mesh/signaling-
 * client.ts does), says ready, keeps its roster from 'membership' and 'membership-delta' (a delta
 * whose base it does not hold costs a 'sync', as in the real client), reports every second and
 * now and then relays a signal (an ICE-candidate-sized payload) to its ring neighbour. Every
 * inbound payload is checked against the shared/protocol schemas, so protocol drift shows up as
 * `invalid` instead of as silently wrong numbers.
 */

/** What every volunteer of one phase adds to; the bench swaps in a fresh one per phase. */
export interface Tally {
  /** 'membership' and 'membership-delta' events received, and their wire bytes (socket.io packet text). */
  membershipMsgs: number
  membershipBytes: number
  fullMsgs: number
  deltaMsgs: number
  /** Every event received, by name. */
  events: Record<string, number>
  /** 'error' events received, by `event:code`. */
  errors: Record<string, number>
  /** Disconnects the bench did not ask for, by socket.io reason. */
  lost: Record<string, number>
  syncs: number
  invalid: number
  /** Join sent → the first membership that lists this volunteer (after its ready), ms. */
  joinToRoster: number[]
  joinFailed: number
  signalsSent: number
  /** Signal sent → relayed to its target (both ends live in this process, one clock), ms. */
  signalMs: number[]
  reportsSent: number
}

export const newTally = (): Tally => ({
  membershipMsgs: 0, membershipBytes: 0, fullMsgs: 0, deltaMsgs: 0, events: {}, errors: {}, lost: {}, syncs: 0, invalid: 0,
  joinToRoster: [], joinFailed: 0, signalsSent: 0, signalMs: [], reportsSent: 0,
})

export interface SwarmContext {
  url: string
  tally: Tally
  /** 0: no reports (the membership sweep measures membership traffic alone). */
  reportEveryMs: number
  /** Mean interval between one volunteer's signals; 0: none. */
  signalEveryMs: number
  /** Join with `deltas: true` (today's client) or take a whole 'membership' per change (older clients). */
  deltas: boolean
}

/** How long a volunteer waits for its join ack and then for the roster to list it. */
export const ROSTER_DEADLINE_MS = 15_000

const bump = (m: Record<string, number>, k: string) => void (m[k] = (m[k] ?? 0) + 1)
/** socket.io's text packet for an event is `42["name",…]` (or with an ack id between). */
const MEMBERSHIP_PACKET = /^\d+\["membership/

export class FakeVolunteer {
  readonly socket: Socket
  self: string | null = null
  membership: MembershipAnnouncement | null = null
  /** Resolves with the join-to-roster time once the roster lists it; rejects on a refusal or the deadline. */
  readonly rostered: Promise<number>
  private joinSentAt = 0
  private inRoster = false
  private leaving = false
  private readonly timers: NodeJS.Timeout[] = []
  private step = 0

  constructor(private readonly ctx: SwarmContext, readonly room: string, name: string) {
    // `query.room` lets a balancer in front of several processes keep a room on one of them.
    this.socket = io(ctx.url, { transports: ['websocket'], reconnection: false, forceNew: true, query: { room } })
    let settle: { resolve: (ms: number) => void; reject: (e: Error) => void }
    this.rostered = new Promise((resolve, reject) => (settle = { resolve, reject }))
    this.rostered.catch(() => {}) // the bench counts failures from the tally; nobody need await
    const fail = (why: string) => {
      if (this.inRoster) return
      this.ctx.tally.joinFailed++
      settle.reject(new Error(`${name}: ${why}`))
    }
    const deadline = setTimeout(() => fail(`not in the roster after ${ROSTER_DEADLINE_MS} ms`), ROSTER_DEADLINE_MS)
    this.timers.push(deadline)

    this.socket.io.on('open', () => {
      this.socket.io.engine.on('data', (d: unknown) => {
        if (typeof d === 'string' && MEMBERSHIP_PACKET.test(d)) this.ctx.tally.membershipBytes += d.length
      })
    })
    this.socket.onAny((event: string) => bump(this.ctx.tally.events, event))
    this.socket.on('connect_error', (e) => fail(`connect: ${e.message}`))
    this.socket.on('disconnect', (reason) => {
      if (!this.leaving) {
        bump(this.ctx.tally.lost, reason)
        fail(`disconnected: ${reason}`)
      }
      this.stopTimers()
    })
    this.socket.on('error', (raw: unknown) => {
      const r = serverErrorSchema.safeParse(raw)
      if (!r.success) return void this.ctx.tally.invalid++
      bump(this.ctx.tally.errors, `${r.data.event}:${r.data.code}`)
    })
    this.socket.on('membership', (raw: unknown) => {
      const r = membershipSchema.safeParse(raw)
      this.ctx.tally.membershipMsgs++
      this.ctx.tally.fullMsgs++
      if (!r.success) return void this.ctx.tally.invalid++
      this.membership = r.data
      this.check(settle.resolve)
    })
    this.socket.on('membership-delta', (raw: unknown) => {
      const r = membershipDeltaSchema.safeParse(raw)
      this.ctx.tally.membershipMsgs++
      this.ctx.tally.deltaMsgs++
      if (!r.success) return void this.ctx.tally.invalid++
      const last = this.membership
      // As client/mesh/signaling-client.ts: older than what it holds, or applied already.
      if (last && last.room === r.data.room && (r.data.epoch < last.epoch || (r.data.epoch === last.epoch && r.data.base !== last.epoch))) return
      const next = last ? applyMembershipDelta(last, r.data) : null
      if (!next) {
        this.ctx.tally.syncs++
        this.socket.emit('sync', { v: PROTOCOL_VERSION })
        return
      }
      this.membership = next
      this.check(settle.resolve)
    })
    this.socket.on('signal', (raw: unknown) => {
      const r = relayedSignalSchema.safeParse(raw)
      if (!r.success) return void this.ctx.tally.invalid++
      const sentAt = r.data.data.sentAt
      if (typeof sentAt === 'number') this.ctx.tally.signalMs.push(performance.now() - sentAt)
    })
    this.socket.on('connect', () => {
      this.joinSentAt = performance.now()
      const join = { v: PROTOCOL_VERSION, room, role: 'volunteer', name, agent: 'node', deltas: ctx.deltas }
      this.socket.timeout(ROSTER_DEADLINE_MS).emit('join', join, (err: Error | null, ack: { ok?: boolean; self?: string; code?: string; membership?: unknown } | undefined) => {
        if (err || !ack?.ok || typeof ack.self !== 'string') return fail(`join: ${err?.message ?? ack?.code ?? 'no ack'}`)
        this.self = ack.self
        const m = membershipSchema.safeParse(ack.membership)
        if (m.success && (!this.membership || m.data.epoch >= this.membership.epoch)) this.membership = m.data
        this.socket.emit('ready', { v: PROTOCOL_VERSION })
        this.check(settle.resolve)
      })
    })
  }

  /** Once the roster lists it: the latency, then reports and signals as a training peer sends them. */
  private check(resolve: (ms: number) => void) {
    if (this.inRoster || !this.self || !this.membership?.peers.includes(this.self)) return
    this.inRoster = true
    const ms = performance.now() - this.joinSentAt
    this.ctx.tally.joinToRoster.push(ms)
    resolve(ms)
    // Random phases, so a ramp's volunteers do not report in lockstep.
    if (this.ctx.reportEveryMs > 0) {
      const every = this.ctx.reportEveryMs
      this.timers.push(setTimeout(() => {
        this.report()
        this.timers.push(setInterval(() => this.report(), every))
      }, Math.random() * every))
    }
    if (this.ctx.signalEveryMs > 0) {
      const next = () => {
        this.timers.push(setTimeout(() => {
          this.signal()
          next()
        }, this.ctx.signalEveryMs * (0.5 + Math.random())))
      }
      next()
    }
  }

  /** Ring neighbours in the roster it holds (what a ring topology's peer reports as neighbours). */
  private neighbours(): string[] {
    const peers = this.membership?.peers ?? []
    const i = this.self ? peers.indexOf(this.self) : -1
    if (i < 0 || peers.length < 2) return []
    const out = new Set([peers[(i + 1) % peers.length], peers[(i - 1 + peers.length) % peers.length]])
    out.delete(this.self!)
    return [...out]
  }

  private report() {
    this.step += 1
    const step = this.step
    const neighbors = this.neighbours()
    this.socket.emit('report', {
      v: PROTOCOL_VERSION, step, globalStep: step, loss: 2.3 / (1 + step / 50), accuracy: Math.min(0.98, 0.1 + step / 200),
      backend: 'wasm', samplesPerSec: 32, stepsPerSec: 1, samples: step * 32,
      bytesSent: step * 40_000, bytesReceived: step * 40_000, neighbors,
      links: Object.fromEntries(neighbors.map((id) => [id, { sent: step * 20_000, received: step * 20_000 }])),
      lr: 0.05, stage: 'training',
    })
    this.ctx.tally.reportsSent++
  }

  private signal() {
    const to = this.neighbours()[0]
    if (!to) return
    // About an ICE candidate's size; the server relays it without reading it.
    this.socket.emit('signal', {
      v: PROTOCOL_VERSION, to,
      data: { type: 'candidate', candidate: { candidate: 'candidate:842163049 1 udp 1677729535 192.0.2.10 54321 typ srflx raddr 10.0.0.5 rport 54321 generation 0 ufrag sC4n network-cost 999', sdpMLineIndex: 0, sdpMid: '0' }, sentAt: performance.now() },
    })
    this.ctx.tally.signalsSent++
  }

  private stopTimers() {
    for (const t of this.timers.splice(0)) clearTimeout(t)
  }

  /** Leaves as a volunteer's Leave button does (a 'leave', then the socket closes). */
  leave() {
    this.leaving = true
    this.stopTimers()
    if (this.socket.connected) this.socket.emit('leave', {})
    this.socket.disconnect()
  }
}
