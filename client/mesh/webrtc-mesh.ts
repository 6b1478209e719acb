import type { RoomConfig } from '../../shared/config'
import { Mailbox, mailboxLimits } from '../../shared/mailbox'
import { linkConditions, seedFrom, type LinkProfileName, type Uplink } from '../../shared/link-conditions'
import type { MembershipAnnouncement } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { DeadlineError, PeerUnavailableError, ProgressClock, deadline, sleep } from '../../shared/transport'
import type { Envelope, LinkStats, Membership, Mesh, MeshMessage, MeshStats, MessageFilter, PeerId, Unsubscribe } from '../../shared/transport'
import { CONTROL, type ControlMessage } from '../../shared/wire/peer-message'
import { CONNECTIVITY_INTERVAL_MS } from './connectivity'
import { newTrafficCounters } from './frame-sender'
import type { Link } from './link'
import { LinkPool } from './link-pool'
import { FALLBACK_ROOM_CONFIG, withDefaults, type MeshRoomConfig, type ResolvedMeshOptions, type WebRtcMeshOptions } from './mesh-options'
import type { MeshDiagnostics, MeshTap, MeshTestPort } from './test-port'
import { WireEncoder } from './wire-encoder'

export type { WrtcImpl } from './data-channel'
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, DEFAULT_WARM_LINKS } from './mesh-options'
export type { MeshSignalingPort, WebRtcMeshOptions } from './mesh-options'
export type { MeshDiagnostics, MeshTap, MeshTestPort } from './test-port'

/**
 * The production Mesh: simple-peer links (native RTCPeerConnection in the browser, an injected
 * `wrtc` such as @roamhq/wrtc in Node), signaled through the room's socket.io server. A facade:
 * - which peers have links, glare and re-dialling: LinkPool (link-pool.ts);
 * - one connection, its send queue and backpressure: Link (link.ts, frame-sender.ts);
 * - messages to frames and back, with validation: WireEncoder (wire-encoder.ts);
 * - here: membership and the Mailbox, the mesh's own control messages (hello, bye) and the
 *   rejection count that turns a misbehaving sender into a suspect report.
 */
export class WebRtcMesh implements Mesh {
  readonly self: PeerId
  /** Merged by the algorithms from the messages they accept (acceptClock), never on arrival. */
  readonly clock = new ProgressClock()
  /** Per-sender budgets from the room's maxMessageBytes (read at every delivery: it may change). */
  private readonly mailbox = new Mailbox(() => mailboxLimits(this.cfg('maxMessageBytes')))
  private readonly counters = newTrafficCounters()
  private readonly rejected: Record<PeerId, number> = {}
  private readonly listeners = new Set<(m: Membership) => void>()
  private readonly taps = new Set<MeshTap>()
  private readonly unsubs: Unsubscribe[] = []
  private readonly opts: ResolvedMeshOptions
  private readonly pool: LinkPool
  private readonly wire: WireEncoder
  private announcedConfig: Partial<RoomConfig> = {}
  private schemaHashValue: string
  private closedMesh = false
  private port: MeshTestPort | null = null
  private readonly connectivityTimer: ReturnType<typeof setInterval>
  /** This peer's emulated uplink per link profile in use (at most one per profile name). */
  private readonly uplinks = new Map<LinkProfileName, Uplink | null>()

  constructor(options: WebRtcMeshOptions) {
    const opts = (this.opts = withDefaults(options))
    this.self = opts.self
    this.schemaHashValue = opts.schemaHash ?? ''
    this.wire = new WireEncoder({
      state: () => ({ epoch: this.pool.membership().epoch, clock: this.clock.value, schemaHash: this.schemaHashValue }),
      compression: () => this.cfg('compression'),
      maxMessageBytes: () => this.cfg('maxMessageBytes'),
      expectedLength: opts.expectedLength,
      errorFeedback: opts.errorFeedback,
    })
    this.pool = new LinkPool({
      self: opts.self,
      signal: (to, data) => opts.signaling.signal(to, data),
      neighbours: opts.neighbours,
      warmLinks: opts.warmLinks,
      link: { wrtc: opts.wrtc, connectTimeoutMs: opts.connectTimeoutMs, highWaterMark: opts.highWaterMark, lowWaterMark: opts.lowWaterMark },
      ice: () => ({ iceServers: this.iceServers(), iceTransportPolicy: this.cfg('iceTransportPolicy') }),
      counters: this.counters,
      shaped: (peer) => this.uplink()?.link(peer) ?? null,
      hooks: {
        created: (link) => this.wire.open(link),
        opened: (link) => {
          this.hello(link)
          void link.sampleConnectivity()
        },
        message: (link, bytes) => this.onMessage(link, bytes),
        closed: (link) => this.wire.close(link),
      },
      log: (event, detail) => this.log(event, detail),
      safely: (where, fn) => this.safely(where, fn),
    })
    this.unsubs.push(opts.signaling.on('membership', (m) => this.safely('membership', () => this.onAnnouncement(m))))
    this.unsubs.push(opts.signaling.on('signal', (s) => this.safely('signal', () => this.pool.onSignal(s.from, s.data))))
    if (opts.signaling.membership) this.onAnnouncement(opts.signaling.membership)
    this.connectivityTimer = setInterval(() => {
      for (const l of this.pool.connected()) void l.sampleConnectivity()
    }, CONNECTIVITY_INTERVAL_MS)
    // A Node peer must be able to exit while its mesh is open (the timer only samples).
    ;(this.connectivityTimer as { unref?: () => void }).unref?.()
  }

  // ---- configuration ----

  get schemaHash(): string {
    return this.schemaHashValue
  }

  /** Set once the model is known (the mesh may connect before the model is built). */
  setSchemaHash(h: string): void {
    this.schemaHashValue = h
  }

  /** The link profile this peer's new links get: its own override, else the room's. */
  linkProfile(): LinkProfileName {
    return this.cfg('link')
  }

  /**
   * The uplink of the current profile. A profile change applies to links made afterwards; the
   * links already up keep the uplink they were made with, so no frame they hold is lost.
   */
  private uplink(): Uplink | null {
    const name = this.linkProfile()
    if (!this.uplinks.has(name)) this.uplinks.set(name, linkConditions(name, { seed: seedFrom(this.self, this.uplinks.size) }))
    return this.uplinks.get(name) ?? null
  }

  private cfg<K extends keyof MeshRoomConfig>(k: K): RoomConfig[K] {
    return (this.opts.config?.[k] ?? this.announcedConfig[k] ?? FALLBACK_ROOM_CONFIG[k]) as RoomConfig[K]
  }

  /**
   * The room's ICE servers, then the server's grant (server-wide STUN/TURN, TURN credentials for
   * this peer). An expired grant is still used (a renewal may be on its way) but asked for anew.
   */
  private iceServers(): RTCIceServer[] {
    const room = this.cfg('iceServers') as RTCIceServer[]
    const grant = this.opts.signaling.iceGrant
    if (!grant) return room
    if (grant.expiresAt !== null && grant.expiresAt <= Date.now()) this.safely('ice-request', () => this.opts.signaling.requestIceServers?.())
    return [...room, ...(grant.iceServers as RTCIceServer[])]
  }

  private log(event: string, detail?: Record<string, unknown>): void {
    this.opts.log?.(event, { self: this.self, ...detail })
  }

  private safely(where: string, fn: () => void): void {
    try {
      fn()
    } catch (e) {
      this.log('mesh.handler-error', { where, error: String((e as Error)?.stack ?? e) })
    }
  }

  // ---- Mesh ----

  membership(): Membership {
    return this.pool.membership()
  }

  onMembership(cb: (m: Membership) => void): Unsubscribe {
    this.listeners.add(cb)
    return () => this.listeners.delete(cb)
  }

  want(peers: readonly PeerId[]): void {
    this.pool.want(peers)
  }

  reportSuspect(peer: PeerId, reason: string): void {
    this.safely('suspect', () => this.opts.signaling.suspect(peer, reason))
  }

  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope> {
    return this.mailbox.receive(filter, signal)
  }

  discard(filter: MessageFilter): number {
    return this.mailbox.discard(filter)
  }

  stats(): MeshStats {
    const perLink: Record<PeerId, LinkStats> = {}
    for (const [p, s] of Object.entries(this.counters.perLink)) {
      const ice = this.pool.existing(p)?.connectivity
      perLink[p] = ice ? { ...s, ice } : { ...s }
    }
    return { ...this.counters.total, perLink, rejected: { ...this.rejected } }
  }

  async send(to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void> {
    if (this.closedMesh) throw new PeerUnavailableError(to, 'mesh closed')
    if (signal?.aborted) throw signal.reason ?? new DeadlineError('mesh.send')
    if (to === this.self) {
      // Loopback delivery keeps algorithms free of a self special case.
      this.mailbox.deliver({ ...msg, from: this.self, epoch: this.membership().epoch, clock: this.clock.value })
      return
    }
    const link = this.pool.linkTo(to)
    link.lastUsed = Date.now()
    await link.waitConnected(signal)
    const frames = this.wire.message(to, msg, link)
    await link.send(frames, signal)
  }

  wireImage(kind: string, data: Float32Array): void {
    this.wire.wireImage(kind, data)
  }

  rejectFrom(peer: PeerId, reason: string): void {
    this.reject(peer, reason)
  }

  private reject(peer: PeerId, reason: string): void {
    const n = (this.rejected[peer] = (this.rejected[peer] ?? 0) + 1)
    this.log('mesh.rejected', { peer, reason, count: n })
    if (n % this.opts.suspectAfterRejects === 0) {
      this.log('mesh.suspect', { peer, rejected: n })
      this.reportSuspect(peer, `rejected ${n} messages (last: ${reason})`.slice(0, 200))
    }
  }

  // ---- membership ----

  private onAnnouncement(a: MembershipAnnouncement): void {
    this.announcedConfig = a.config
    const m = this.pool.adopt(a)
    if (!m) return
    this.mailbox.setMinEpoch(m.epoch)
    for (const cb of [...this.listeners]) this.safely('onMembership', () => cb(m))
  }

  // ---- receive ----

  private onMessage(link: Link, bytes: Uint8Array | null): void {
    if (!bytes) return this.reject(link.peer, 'non-binary data-channel message')
    const r = this.wire.read(link, link.peer, bytes)
    switch (r.type) {
      case 'partial':
        return
      case 'raw':
        for (const t of this.taps) t.rawFrame?.(link.peer, bytes.byteLength)
        return
      case 'rejected':
        return this.reject(link.peer, r.reason)
      case 'control':
        return this.onControl(link, r.message)
      case 'envelope':
        // The clock is the sender's claim: the algorithm merges it once the message passed its
        // own checks (acceptClock), bounded; a wrong-length message never moves it.
        this.mailbox.deliver(r.envelope)
    }
  }

  private onControl(link: Link, m: ControlMessage): void {
    switch (m.kind) {
      case 'mesh/hello':
        this.log('mesh.hello', { peer: link.peer, epoch: m.meta.epoch })
        return
      case 'mesh/bye':
        link.byeReceived = true
        this.pool.drop(link, `bye: ${m.meta.reason}`)
        return
      default:
        for (const t of this.taps) t.control?.(link.peer, m)
    }
  }

  // ---- control messages ----

  private hello(link: Link): void {
    const meta = { protocol: PROTOCOL_VERSION, schemaHash: this.schemaHashValue, epoch: this.membership().epoch }
    void this.sendControl(link, { kind: CONTROL.hello.kind, meta })
  }

  private sendControl(link: Link, m: ControlMessage, signal?: AbortSignal): Promise<void> {
    const p = link.send(this.wire.control(m, link), signal)
    p.catch(() => {})
    return p
  }

  /** Says goodbye to connected peers (best effort), closes every link and stops listening. */
  async close(): Promise<void> {
    if (this.closedMesh) return
    const byes = this.pool.connected().map((l) => {
      const sig = deadline('mesh.bye', 1000)
      return this.sendControl(l, { kind: CONTROL.bye.kind, meta: { reason: 'leaving' } }, sig).catch(() => {})
    })
    await Promise.all(byes)
    // Emulated link conditions hold the byes a while: let them arrive, within the same second.
    const held = [...this.uplinks.values()].filter((u) => u !== null).map((u) => u.idle())
    if (held.length > 0) {
      const done = new AbortController()
      await Promise.race([Promise.all(held), sleep(1000, done.signal).catch(() => {})])
      done.abort()
    }
    this.closedMesh = true
    clearInterval(this.connectivityTimer)
    for (const u of this.unsubs) u()
    this.pool.close()
    for (const u of this.uplinks.values()) u?.close()
  }

  // ---- tests and benchmarks ----

  /** The port client/mesh/testing/ reaches this mesh through (see MeshTestPort). */
  testPort(): MeshTestPort {
    return (this.port ??= this.createTestPort())
  }

  private createTestPort(): MeshTestPort {
    const connect = async (peer: PeerId, signal?: AbortSignal) => {
      const link = this.pool.linkTo(peer)
      await link.waitConnected(signal)
      return link
    }
    return {
      connectedPeers: () => this.pool.connected().map((l) => l.peer),
      diagnostics: () => this.diagnostics(),
      connect: async (peer, signal) => void (await connect(peer, signal)),
      writeFrames: async (peer, frames, signal) => (await connect(peer, signal)).send(frames, signal),
      sendControl: async (peer, m, signal) => {
        const link = this.pool.existing(peer)
        if (!link) throw new PeerUnavailableError(peer, 'link closed')
        return this.sendControl(link, m, signal)
      },
      tap: (t) => {
        this.taps.add(t)
        return () => this.taps.delete(t)
      },
      deliver: (e) => this.mailbox.deliver(e),
    }
  }

  private diagnostics(): MeshDiagnostics {
    const c = this.counters
    return {
      links: this.pool.peers(),
      connected: this.pool.connected().map((l) => l.peer),
      peakBufferedAmount: c.peakBuffered,
      framesSent: c.framesSent,
      bufferedReads: c.bufferedReads,
      highWaterMark: this.opts.highWaterMark,
      dropped: { ...this.mailbox.dropped },
    }
  }
}
