import { io, type Socket } from 'socket.io-client'
import { z } from 'zod'
import {
  awaySchema,
  checkpointSchema,
  creditSchema,
  helloSchema,
  iceServersGrantSchema,
  iceServersRequestSchema,
  joinedSchema,
  joinSchema,
  JoinRejectedError,
  RoomMovedError,
  roomNameSchema,
  applyMembershipDelta,
  membershipDeltaSchema,
  membershipSchema,
  peerIdSchema,
  peerCommandSchema,
  readySchema,
  relayedSignalSchema,
  reportSchema,
  serverErrorSchema,
  signalSchema,
  suspectSchema,
  syncSchema,
  type AwayReason,
  type IceServersGrant,
  type ClientToServerEvents,
  type Credit,
  type JoinRequest,
  type MembershipAnnouncement,
  type PeerCommand,
  type PeerReport,
  type ServerToClientEvents,
} from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import type { Identity } from '../../shared/identity'
import { DeadlineError, type PeerId, type Unsubscribe } from '../../shared/transport'

/**
 * Typed socket.io client. Every inbound event is validated with the shared zod schemas;
 * invalid ones are logged and ignored (never thrown out of a handler). Outbound payloads are
 * validated too, so a bug here shows up as an error at the call site, not as a server 'error'.
 */

/** The join ack as the server sends it (loose: only what we read). */
const joinAckSchema = z.object({
  ok: z.boolean(),
  self: peerIdSchema.optional(),
  code: z.string().optional(),
  message: z.string().optional(),
  retryAfterMs: z.number().min(0).optional(),
  /** With code 'moved': the name the room is served under. */
  room: roomNameSchema.optional(),
})

export type Joined = z.infer<typeof joinedSchema>
export type RelayedSignal = z.infer<typeof relayedSignalSchema>
export type ServerError = z.infer<typeof serverErrorSchema>

export interface InboundEvents {
  joined: Joined
  membership: MembershipAnnouncement
  signal: RelayedSignal
  error: ServerError
  command: PeerCommand
  credit: Credit
  'room-state': unknown
}

const inboundSchemas: { [K in keyof InboundEvents]: z.ZodType<InboundEvents[K]> | null } = {
  joined: joinedSchema,
  membership: membershipSchema,
  signal: relayedSignalSchema,
  error: serverErrorSchema,
  command: peerCommandSchema,
  credit: creditSchema,
  // Spectator view: shape owned by the server's REST API; consumers validate it themselves.
  'room-state': null,
}

export interface SignalingClientOptions {
  /** Extra socket.io-client options (tests pass `transports: ['websocket']`). */
  socket?: Parameters<typeof io>[1]
  log?: (event: string, detail?: Record<string, unknown>) => void
  /**
   * A long-lived key pair to join as (shared/identity.ts): the server derives our peer id from
   * it, so it survives reloads and reconnects. Without one (or when it resolves to null) the
   * socket's id is our id.
   */
  identity?: Promise<Identity | null> | Identity | null
  /**
   * The room this client is for: sent as the connection's `room` query, which the balancer in
   * front of several server processes routes by (docs/deploy.md). A single server ignores it.
   */
  room?: string
}

/** How long a join waits for the server's 'hello' challenge before joining without an identity (an older server sends none). */
export const HELLO_WAIT_MS = 5_000
/** Asking the server for fresh ICE credentials at most this often (it pushes renewals itself; the server's bound is 3 then 1 per 30 s). */
export const ICE_REQUEST_MIN_INTERVAL_MS = 30_000

type Listener<K extends keyof InboundEvents> = (p: InboundEvents[K]) => void

export class SignalingClient {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>
  private listeners: { [K in keyof InboundEvents]?: Set<Listener<K>> } = {}
  private selfId: PeerId | null = null
  private lastMembership: MembershipAnnouncement | null = null
  /** Inbound events dropped by validation, per event name. */
  readonly invalid: Record<string, number> = {}
  private readonly log: NonNullable<SignalingClientOptions['log']>
  private readonly identity: Promise<Identity | null>
  /** This connection's challenge; replaced on every (re)connection. */
  private challenge: string | null = null
  private challengeWaiters = new Set<() => void>()
  private lastIceGrant: IceServersGrant | null = null
  private lastIceRequest = -Infinity

  constructor(url: string, opts: SignalingClientOptions = {}) {
    this.log = opts.log ?? (() => {})
    this.identity = Promise.resolve(opts.identity ?? null).catch((e: unknown) => {
      this.log('signaling.identity-unavailable', { error: String(e) })
      return null
    })
    const query = opts.room ? { room: opts.room } : undefined
    this.socket = io(url, { autoConnect: true, reconnection: true, ...(query ? { query } : {}), ...opts.socket }) as Socket<ServerToClientEvents, ClientToServerEvents>
    this.socket.on('disconnect', () => { this.challenge = null })
    this.socket.on('hello', (raw: unknown) => {
      const r = helloSchema.safeParse(raw)
      if (!r.success) return void this.log('signaling.invalid', { event: 'hello', issue: r.error.issues[0]?.message })
      this.challenge = r.data.challenge
      for (const w of [...this.challengeWaiters]) w()
    })
    this.socket.on('membership-delta', (raw: unknown) => this.onDelta(raw))
    this.socket.on('ice-servers', (raw: unknown) => {
      const r = iceServersGrantSchema.safeParse(raw)
      if (!r.success) {
        this.invalid['ice-servers'] = (this.invalid['ice-servers'] ?? 0) + 1
        return void this.log('signaling.invalid', { event: 'ice-servers', issue: r.error.issues[0]?.message })
      }
      this.lastIceGrant = r.data
    })
    for (const name of Object.keys(inboundSchemas) as (keyof InboundEvents)[]) {
      this.socket.on(name as 'joined', (raw: unknown) => this.dispatch(name, raw))
    }
  }

  get self(): PeerId | null {
    return this.selfId
  }

  /** The last valid membership announcement (null before the first). */
  get membership(): MembershipAnnouncement | null {
    return this.lastMembership
  }

  private dispatch<K extends keyof InboundEvents>(name: K, raw: unknown): void {
    const schema = inboundSchemas[name]
    let payload: InboundEvents[K]
    if (schema) {
      const r = schema.safeParse(raw)
      if (!r.success) {
        this.invalid[name] = (this.invalid[name] ?? 0) + 1
        this.log('signaling.invalid', { event: name, issue: r.error.issues[0]?.message })
        return
      }
      payload = r.data
    } else payload = raw as InboundEvents[K]
    if (name === 'joined') this.selfId = (payload as Joined).self
    if (name === 'membership') this.lastMembership = payload as MembershipAnnouncement
    for (const cb of [...(this.listeners[name] ?? [])]) {
      try {
        ;(cb as Listener<K>)(payload)
      } catch (e) {
        this.log('signaling.listener-error', { event: name, error: String(e) })
      }
    }
  }

  /**
   * A roster change relative to the last membership: applied and handed on as a whole
   * membership, so listeners never see deltas. Stale ones are dropped; a gap asks for a resync.
   */
  private onDelta(raw: unknown): void {
    const r = membershipDeltaSchema.safeParse(raw)
    if (!r.success) {
      this.invalid['membership-delta'] = (this.invalid['membership-delta'] ?? 0) + 1
      return void this.log('signaling.invalid', { event: 'membership-delta', issue: r.error.issues[0]?.message })
    }
    const last = this.lastMembership
    // Older than what we have, or one we applied already. A pause or resume keeps the epoch
    // (base = epoch): that one is applied like any other.
    if (last && last.room === r.data.room && (r.data.epoch < last.epoch || (r.data.epoch === last.epoch && r.data.base !== last.epoch))) return
    const next = last ? applyMembershipDelta(last, r.data) : null
    if (!next) {
      this.log('signaling.resync', { epoch: last?.epoch ?? null, base: r.data.base })
      return void this.socket.emit('sync', syncSchema.parse({ v: PROTOCOL_VERSION }))
    }
    this.dispatch('membership', next)
  }

  on<K extends keyof InboundEvents>(name: K, cb: Listener<K>): Unsubscribe {
    const set = (this.listeners[name] ??= new Set() as never) as Set<Listener<K>>
    set.add(cb)
    return () => set.delete(cb)
  }

  /**
   * The server's latest STUN/TURN grant for us (server-wide servers, TURN credentials issued to
   * our id), or null when the server sent none. Used on top of the room's `iceServers`.
   */
  get iceGrant(): IceServersGrant | null {
    return this.lastIceGrant
  }

  /** Asks for a fresh grant (the server also pushes one before expiry); at most every ICE_REQUEST_MIN_INTERVAL_MS. */
  requestIceServers(): void {
    const now = Date.now()
    if (now - this.lastIceRequest < ICE_REQUEST_MIN_INTERVAL_MS) return
    this.lastIceRequest = now
    this.socket.emit('ice-servers', iceServersRequestSchema.parse({ v: PROTOCOL_VERSION }))
  }

  /** This connection's challenge, once the server's 'hello' came (null after HELLO_WAIT_MS or on abort). */
  private waitForChallenge(signal: AbortSignal): Promise<string | null> {
    if (this.challenge) return Promise.resolve(this.challenge)
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.challengeWaiters.delete(done)
        signal.removeEventListener('abort', done)
        resolve(this.challenge)
      }
      const timer = setTimeout(done, HELLO_WAIT_MS)
      this.challengeWaiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /**
   * Joins a room, as our identity key when we have one (signing this connection's challenge).
   * Resolves with our peer id from the server's ack (or from the 'joined' event, whichever comes
   * first); rejects on an error ack or when `signal` aborts.
   */
  async join(req: Omit<JoinRequest, 'v' | 'agent' | 'identity'> & { agent?: JoinRequest['agent'] }, signal: AbortSignal): Promise<Joined> {
    try {
      return await this.joinOnce(req, signal)
    } catch (e) {
      if (!(e instanceof RoomMovedError)) throw e
      // Asked for by its code: the room's process is the one its name routes to.
      this.log('signaling.moved', { from: req.room, to: e.room })
      this.routeTo(e.room)
      return this.joinOnce({ ...req, room: e.room }, signal)
    }
  }

  /** Reconnects with `room` as the routing key (this and every later reconnect). */
  private routeTo(room: string): void {
    const opts = this.socket.io.opts as { query?: Record<string, string> }
    opts.query = { ...opts.query, room }
    this.challenge = null
    this.socket.disconnect()
    this.socket.connect()
  }

  private async joinOnce(req: Omit<JoinRequest, 'v' | 'agent' | 'identity'> & { agent?: JoinRequest['agent'] }, signal: AbortSignal): Promise<Joined> {
    const identity = await this.identity
    let proof: JoinRequest['identity']
    if (identity) {
      const challenge = await this.waitForChallenge(signal)
      if (challenge) proof = await identity.prove(challenge, req.room)
      else this.log('signaling.no-challenge', { waitedMs: HELLO_WAIT_MS })
    }
    return this.sendJoin(joinSchema.parse({ v: PROTOCOL_VERSION, ...req, deltas: true, ...(proof ? { identity: proof } : {}) }), signal)
  }

  private sendJoin(payload: JoinRequest, signal: AbortSignal): Promise<Joined> {
    return new Promise<Joined>((resolve, reject) => {
      let done = false
      const finish = (err: Error | null, j?: Joined) => {
        if (done) return
        done = true
        off()
        signal.removeEventListener('abort', onAbort)
        if (err) reject(err)
        else {
          this.selfId = j!.self
          resolve(j!)
        }
      }
      const off = this.on('joined', (j) => finish(null, j))
      const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new DeadlineError('signaling.join'))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.socket.emit('join', payload, (ack: unknown) => {
        const ok = joinedSchema.safeParse(ack)
        if (ok.success) return finish(null, ok.data)
        const err = serverErrorSchema.safeParse(ack)
        if (err.success) return finish(new JoinRejectedError(err.data.code, err.data.message))
        // The server's ack is {ok, self, membership…} or {ok:false, code, message}.
        const a = joinAckSchema.safeParse(ack)
        if (!a.success) return // unknown shape: the 'joined' event decides
        if (a.data.ok && a.data.self) return finish(null, { v: PROTOCOL_VERSION, self: a.data.self, room: payload.room })
        if (!a.data.ok && a.data.code === 'moved' && a.data.room) return finish(new RoomMovedError(a.data.room, a.data.message ?? ''))
        if (!a.data.ok) finish(new JoinRejectedError(a.data.code ?? 'error', a.data.message ?? '', a.data.retryAfterMs ?? null))
      })
    })
  }

  signal(to: PeerId, data: Record<string, unknown>): void {
    this.socket.emit('signal', signalSchema.parse({ v: PROTOCOL_VERSION, to, data }))
  }

  report(r: Omit<z.input<typeof reportSchema>, 'v'>): void {
    this.socket.emit('report', reportSchema.parse({ v: PROTOCOL_VERSION, ...r }) satisfies PeerReport)
  }

  /** Declares this (joined, pending) volunteer ready to train: the server adds it to the roster. */
  ready(): void {
    this.socket.emit('ready', readySchema.parse({ v: PROTOCOL_VERSION }))
  }

  /** ready(), then resolves with the first membership that lists us; rejects when `signal` aborts. */
  enterRoster(signal: AbortSignal): Promise<MembershipAnnouncement> {
    return new Promise((resolve, reject) => {
      const self = this.selfId
      if (!self) return reject(new Error('enterRoster: join first'))
      const done = (err: unknown, m?: MembershipAnnouncement) => {
        off()
        signal.removeEventListener('abort', onAbort)
        if (m) resolve(m)
        else reject(err)
      }
      const off = this.on('membership', (m) => {
        if (m.peers.includes(self)) done(null, m)
      })
      const onAbort = () => done(signal.reason instanceof Error ? signal.reason : new DeadlineError('signaling.ready'))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.ready()
    })
  }

  /**
   * Steps out of the roster for a while without leaving the room (user pause, hidden tab): the
   * server announces a new roster without us, records no eviction, and ready() brings us back.
   */
  away(reason: AwayReason): void {
    this.socket.emit('away', awaySchema.parse({ v: PROTOCOL_VERSION, reason }))
  }

  /**
   * Drops the transport as a network blip would (host fault injection "disconnect"): not
   * socket.disconnect(), which means "stay away"; socket.io reconnects by itself and fires
   * 'reconnect', on which the session rejoins.
   */
  dropConnection(): void {
    this.socket.io.engine?.close()
  }

  suspect(peer: PeerId, reason: string): void {
    this.socket.emit('suspect', suspectSchema.parse({ v: PROTOCOL_VERSION, peer, reason: reason.slice(0, 200) }))
  }

  checkpoint(step: number, schemaHash: string, params: Uint8Array): void {
    this.socket.emit('checkpoint', checkpointSchema.parse({ v: PROTOCOL_VERSION, step, schemaHash, params }))
  }

  leave(): void {
    this.socket.emit('leave', { v: PROTOCOL_VERSION })
  }

  close(): void {
    this.socket.removeAllListeners()
    this.socket.disconnect()
    this.listeners = {}
  }
}
