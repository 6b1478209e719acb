import SimplePeer from 'simple-peer'
import { ErrorFeedback, codecFor } from '../../shared/wire/codec'
import type { Compression, RoomConfig } from '../../shared/config'
import { Mailbox } from '../../shared/mailbox'
import type { MembershipAnnouncement } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import {
  DeadlineError,
  PeerUnavailableError,
  ProgressClock,
  deadline,
  type Envelope,
  type LinkStats,
  type Membership,
  type Mesh,
  type MeshMessage,
  type MeshStats,
  type MessageFilter,
  type PeerId,
  type Unsubscribe,
} from '../../shared/transport'
import { FrameAssembler, MAX_FRAME_BYTES, encodeMessage, isRawFrame, rawFrame, type WireHeader } from '../../shared/wire/framing'
import { CONTROL, fromWire, toWire, type ControlMessage } from '../../shared/wire/peer-message'

/**
 * The production Mesh: simple-peer links (native RTCPeerConnection in the browser, an injected
 * `wrtc` such as @roamhq/wrtc in Node), signaled through the room's socket.io server.
 *
 * - Links: kept to the peers the algorithm `want()`s plus the topology `neighbours`; others stay
 *   open in a small LRU pool (time-varying graphs reuse them) up to `warmLinks`.
 * - Glare: the peer with the lower id is always the initiator; the other side asks for a link
 *   with a `{tabswarm:'connect'}` signal instead of offering.
 * - Sends: framed (≤ 64 KiB), one message at a time per link, with backpressure on the
 *   RTCDataChannel's bufferedAmount (simple-peer's own send() has none).
 * - Receives: reassembled and validated (header schema, schema hash, sizes, finiteness, expected
 *   length), then handed to the shared Mailbox, `from` stamped from the link.
 */

/** The part of SignalingClient the mesh uses (structural, so tests can pass their own). */
export interface MeshSignalingPort {
  on(name: 'signal', cb: (p: { from: PeerId; data: Record<string, unknown> }) => void): Unsubscribe
  on(name: 'membership', cb: (p: MembershipAnnouncement) => void): Unsubscribe
  signal(to: PeerId, data: Record<string, unknown>): void
  suspect(peer: PeerId, reason: string): void
  readonly membership: MembershipAnnouncement | null
}

export type WrtcImpl = NonNullable<SimplePeer.Options['wrtc']>

export interface WebRtcMeshOptions {
  self: PeerId
  signaling: MeshSignalingPort
  /** Overrides of the room config announced by the server (tests pass `iceServers: []`). */
  config?: Partial<Pick<RoomConfig, 'iceServers' | 'maxMessageBytes' | 'compression'>>
  /** Model-schema hash; messages carrying another one are rejected on their first frame. */
  schemaHash?: string
  /** Node: the WebRTC implementation (e.g. `import wrtc from '@roamhq/wrtc'`). Browser: omit. */
  wrtc?: WrtcImpl
  /** Deadline for a link to connect before send() rejects with PeerUnavailableError. */
  connectTimeoutMs?: number
  /** Links kept open beyond the wanted ones (LRU). */
  warmLinks?: number
  /** Pause sending above this many bytes queued on the data channel… */
  highWaterMark?: number
  /** …and resume when it drains below this. */
  lowWaterMark?: number
  /** Report a peer as suspect after this many rejected messages (and every multiple). */
  suspectAfterRejects?: number
  /** Topology neighbours for a membership (pure function from shared/topology). */
  neighbours?: (m: Membership, self: PeerId) => readonly PeerId[]
  /** Expected element count per kind (e.g. paramCount for parameter messages). */
  expectedLength?: (kind: string) => number | undefined
  /**
   * Which kinds carry increments (gradients, partial sums of gradients): their lossy (fp16/int8)
   * encoding keeps the rounding error per (peer, kind) and adds it to the next message of that
   * kind (error feedback), so what the receiver accumulates stays unbiased. Parameter vectors
   * are not increments and are sent as they are.
   */
  errorFeedback?: (kind: string) => boolean
  log?: (event: string, detail?: Record<string, unknown>) => void
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000
export const DEFAULT_WARM_LINKS = 8
export const DEFAULT_HIGH_WATER = 1024 * 1024
export const DEFAULT_LOW_WATER = 256 * 1024
/** How often the answering side repeats a connect request while no link exists. */
const CONNECT_REQUEST_INTERVAL_MS = 2_000
/** Delay before re-dialling a wanted peer whose link dropped. */
const RECONNECT_DELAY_MS = 500
/** Fallback poll for stacks whose 'bufferedamountlow' event is unreliable. */
const DRAIN_POLL_MS = 20
const CONNECT_SIGNAL = 'connect'
const RAW_THROUGHPUT_DEADLINE_MS = 120_000

type DataChannelLike = {
  readonly bufferedAmount: number
  bufferedAmountLowThreshold: number
  readonly readyState: string
  send(d: Uint8Array): void
  addEventListener?(t: string, cb: () => void): void
  removeEventListener?(t: string, cb: () => void): void
}

class Link {
  connected = false
  closed = false
  gotOffer = false
  byeReceived = false
  lastUsed = Date.now()
  nextMsgId = 0
  rawReceived = 0
  lastConnectRequest = 0
  sendChain: Promise<void> = Promise.resolve()
  readonly stats: LinkStats
  private waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>()
  private connectTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    readonly peer: PeerId,
    readonly sp: SimplePeer.Instance,
    readonly initiator: boolean,
    readonly assembler: FrameAssembler,
    stats: LinkStats,
  ) {
    this.stats = stats
  }

  get channel(): DataChannelLike | null {
    return ((this.sp as unknown as { _channel?: DataChannelLike })._channel) ?? null
  }

  armConnectTimer(ms: number, onTimeout: () => void): void {
    this.connectTimer = setTimeout(() => {
      if (!this.connected && !this.closed) onTimeout()
    }, ms)
  }

  markConnected(): void {
    this.connected = true
    if (this.connectTimer) clearTimeout(this.connectTimer)
    for (const w of this.waiters) w.resolve()
    this.waiters.clear()
  }

  markClosed(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.connected = false
    if (this.connectTimer) clearTimeout(this.connectTimer)
    for (const w of this.waiters) w.reject(new PeerUnavailableError(this.peer, reason))
    this.waiters.clear()
  }

  whenConnected(signal: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve()
    if (this.closed) return Promise.reject(new PeerUnavailableError(this.peer, 'link closed'))
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (e: Error) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      const onAbort = () => {
        this.waiters.delete(w)
        reject(signal.reason)
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.add(w)
    })
  }
}

function toBytes(d: unknown): Uint8Array | null {
  if (d instanceof Uint8Array) return d
  if (d instanceof ArrayBuffer) return new Uint8Array(d)
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
  return null
}

export interface RawThroughput {
  bytes: number
  ms: number
  bytesPerSec: number
}

export class WebRtcMesh implements Mesh {
  readonly self: PeerId
  readonly clock = new ProgressClock()
  private readonly mailbox = new Mailbox()
  private readonly links = new Map<PeerId, Link>()
  private readonly perLink: Record<PeerId, LinkStats> = {}
  private readonly rejected: Record<PeerId, number> = {}
  private readonly total: LinkStats = { bytesSent: 0, bytesReceived: 0 }
  private current: Membership
  private announcedConfig: Partial<RoomConfig> = {}
  private readonly listeners = new Set<(m: Membership) => void>()
  private wanted: readonly PeerId[] = []
  private readonly unsubs: Unsubscribe[] = []
  private readonly reconnectTimers = new Set<ReturnType<typeof setTimeout>>()
  private readonly rawAcks = new Map<number, (received: number) => void>()
  private rawRun = 0
  /** Largest bufferedAmount seen right before a send (shows backpressure holds the high-water mark). */
  private peakBuffered = 0
  /** Frames written and bufferedAmount readings taken for them (diagnostics: see writeFrame). */
  private framesSent = 0
  private bufferedReads = 0
  private closedMesh = false
  private schemaHashValue: string
  private readonly ef = new Map<Compression, ErrorFeedback>()
  private readonly opts: Required<Pick<WebRtcMeshOptions, 'connectTimeoutMs' | 'warmLinks' | 'highWaterMark' | 'lowWaterMark' | 'suspectAfterRejects'>> &
    WebRtcMeshOptions

  constructor(opts: WebRtcMeshOptions) {
    this.opts = {
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      warmLinks: DEFAULT_WARM_LINKS,
      highWaterMark: DEFAULT_HIGH_WATER,
      lowWaterMark: DEFAULT_LOW_WATER,
      suspectAfterRejects: 3,
      ...opts,
    }
    this.self = opts.self
    this.schemaHashValue = opts.schemaHash ?? ''
    this.current = { epoch: 0, peers: [opts.self], roles: { ps: null } }
    this.unsubs.push(opts.signaling.on('membership', (m) => this.safely('membership', () => this.onAnnouncement(m))))
    this.unsubs.push(opts.signaling.on('signal', (s) => this.safely('signal', () => this.onSignal(s.from, s.data))))
    if (opts.signaling.membership) this.onAnnouncement(opts.signaling.membership)
  }

  // ---- configuration ----

  get schemaHash(): string {
    return this.schemaHashValue
  }

  /** Set once the model is known (the mesh may connect before the model is built). */
  setSchemaHash(h: string): void {
    this.schemaHashValue = h
  }

  private cfg<K extends 'iceServers' | 'maxMessageBytes' | 'compression'>(k: K): RoomConfig[K] {
    const fallback: Pick<RoomConfig, 'iceServers' | 'maxMessageBytes' | 'compression'> = {
      iceServers: [],
      maxMessageBytes: 64 * 1024 * 1024,
      compression: 'fp32',
    }
    return (this.opts.config?.[k] ?? this.announcedConfig[k] ?? fallback[k]) as RoomConfig[K]
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
    return this.current
  }

  onMembership(cb: (m: Membership) => void): Unsubscribe {
    this.listeners.add(cb)
    return () => this.listeners.delete(cb)
  }

  want(peers: readonly PeerId[]): void {
    this.wanted = [...peers]
    this.reconcile()
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
    for (const [p, s] of Object.entries(this.perLink)) perLink[p] = { ...s }
    return { ...this.total, perLink, rejected: { ...this.rejected } }
  }

  async send(to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void> {
    if (this.closedMesh) throw new PeerUnavailableError(to, 'mesh closed')
    if (signal?.aborted) throw signal.reason ?? new DeadlineError('mesh.send')
    if (to === this.self) {
      // Loopback delivery keeps algorithms free of a self special case.
      this.clock.observe(this.clock.value)
      this.mailbox.deliver({ ...msg, from: this.self, epoch: this.current.epoch, clock: this.clock.value })
      return
    }
    if (!this.current.peers.includes(to)) throw new PeerUnavailableError(to, 'not in room')
    const link = this.ensureLink(to)
    link.lastUsed = Date.now()
    await this.waitConnected(link, signal)
    // Frames are cut now, synchronously: they are the copy that lets the caller reuse msg.data
    // while this message waits behind earlier ones (the fp32 codec itself does not copy).
    const { header, payload } = this.encode(to, msg)
    const frames = this.frames(link, header, payload)
    await this.enqueue(link, signal, () => this.writeFrames(link, frames))
  }

  /**
   * Waits for the link under the named deadline `mesh.connect:<peer>`; on expiry rejects with
   * PeerUnavailableError, on the caller's abort with the caller's reason.
   */
  private async waitConnected(link: Link, signal?: AbortSignal): Promise<void> {
    if (link.connected) return
    const ctl = new AbortController()
    const name = `mesh.connect:${link.peer}`
    const timer = setTimeout(() => ctl.abort(new DeadlineError(name)), this.opts.connectTimeoutMs)
    const onParent = () => ctl.abort(signal?.reason ?? new DeadlineError('mesh.send'))
    signal?.addEventListener('abort', onParent, { once: true })
    try {
      await link.whenConnected(ctl.signal)
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e
      if (e instanceof DeadlineError) throw new PeerUnavailableError(link.peer, `not connected within ${this.opts.connectTimeoutMs} ms`)
      throw e
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onParent)
    }
  }

  wireImage(kind: string, data: Float32Array): void {
    const compression = this.cfg('compression')
    // Increments are sent with error feedback, whose image depends on the link: not for them.
    if (compression === 'fp32' || this.opts.errorFeedback?.(kind)) return
    const codec = codecFor(compression)
    const r = codec.decode(codec.encode(data), data.length)
    if (r.ok) data.set(r.data)
  }

  /** Encodes with the room's compression (and error feedback for increment kinds). */
  private encode(to: PeerId, msg: MeshMessage): { header: WireHeader; payload: Uint8Array } {
    const compression = this.cfg('compression')
    const wire = toWire(msg, { epoch: this.current.epoch, clock: this.clock.value, schemaHash: this.schemaHashValue, compression })
    if (msg.data && compression !== 'fp32' && this.opts.errorFeedback?.(msg.kind)) {
      let ef = this.ef.get(compression)
      if (!ef) this.ef.set(compression, (ef = new ErrorFeedback(codecFor(compression))))
      const payload = ef.encode(`${to}/${msg.kind}`, msg.data)
      return { header: { ...wire.header, byteLength: payload.byteLength }, payload }
    }
    return wire
  }

  /**
   * Runs `job` after the link's previous sends (frames of two messages must never interleave).
   * If `signal` aborts, the caller gets the DeadlineError at once, but a message already started
   * is still finished in the background so the receiver never sees a torn message.
   */
  private enqueue(link: Link, signal: AbortSignal | undefined, job: () => Promise<void>): Promise<void> {
    let started = false
    let cancelled = false
    const run = link.sendChain.then(() => {
      if (cancelled) return
      started = true
      return job()
    })
    link.sendChain = run.catch(() => {})
    if (!signal) return run
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (!started) cancelled = true
        reject(signal.reason ?? new DeadlineError('mesh.send'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      run.then(
        () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
        (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  /**
   * One message's frames, with the link's next message id. Ids follow the order of enqueue()
   * calls, which is the order the frames go out; a message cancelled before it started leaves a
   * gap in the ids, which the receiver's assembler does not mind.
   */
  private frames(link: Link, header: WireHeader, payload: Uint8Array): Uint8Array[] {
    const msgId = link.nextMsgId
    link.nextMsgId = (link.nextMsgId + 1) >>> 0
    return encodeMessage(msgId, header, payload)
  }

  private async writeFrames(link: Link, frames: readonly Uint8Array[]): Promise<void> {
    let bound = -1
    for (const f of frames) bound = await this.writeFrame(link, f, bound)
  }

  /**
   * Sends one frame, waiting for the channel to drain if it is over the high-water mark.
   * `bound` is the previous frame's return value: an upper bound on bufferedAmount (the last
   * reading plus what was queued since; the queue only drains in between), or −1 for none. While
   * the bound plus this frame stays under the mark, the channel is not asked again: readyState
   * and bufferedAmount are each a blocking call into libwebrtc's signaling thread in wrtc
   * (~20 µs of CPU idle, far more when the model's threads hold every core), as many as the
   * frames themselves. A channel that closed meanwhile makes send() throw, handled below.
   */
  private async writeFrame(link: Link, frame: Uint8Array, bound = -1): Promise<number> {
    const ch = link.channel
    const hwm = this.opts.highWaterMark
    let buffered = bound
    if (link.closed || !ch) throw new PeerUnavailableError(link.peer, 'link closed')
    if (bound < 0 || bound + frame.byteLength > hwm) {
      if (ch.readyState !== 'open') throw new PeerUnavailableError(link.peer, 'link closed')
      buffered = ch.bufferedAmount
      this.bufferedReads++
      if (buffered > hwm) {
        await this.drain(link, ch)
        if (link.closed) throw new PeerUnavailableError(link.peer, 'link closed')
        buffered = ch.bufferedAmount
      }
    }
    if (buffered > this.peakBuffered) this.peakBuffered = buffered
    try {
      ch.send(frame)
    } catch (e) {
      this.dropLink(link, `send failed: ${String(e)}`)
      throw new PeerUnavailableError(link.peer, 'send failed')
    }
    this.framesSent++
    link.stats.bytesSent += frame.byteLength
    this.total.bytesSent += frame.byteLength
    return buffered + frame.byteLength
  }

  /** Waits until the channel's queue drains below the low-water mark (event, with a poll fallback). */
  private drain(link: Link, ch: DataChannelLike): Promise<void> {
    ch.bufferedAmountLowThreshold = this.opts.lowWaterMark
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setInterval> | null = null
      const done = () => {
        if (timer) clearInterval(timer)
        ch.removeEventListener?.('bufferedamountlow', check)
        resolve()
      }
      const check = () => {
        if (link.closed || ch.readyState !== 'open' || ch.bufferedAmount <= this.opts.lowWaterMark) done()
      }
      ch.addEventListener?.('bufferedamountlow', check)
      timer = setInterval(check, DRAIN_POLL_MS)
      check()
    })
  }

  // ---- membership ----

  private onAnnouncement(a: MembershipAnnouncement): void {
    this.announcedConfig = a.config
    if (a.epoch < this.current.epoch || (a.epoch === this.current.epoch && this.current.epoch !== 0)) return
    const m: Membership = { epoch: a.epoch, peers: [...a.peers], roles: { ps: a.roles.ps } }
    this.current = m
    this.mailbox.setMinEpoch(m.epoch)
    for (const [peer, link] of this.links) if (!m.peers.includes(peer)) this.dropLink(link, 'peer left the room')
    this.reconcile()
    for (const cb of [...this.listeners]) this.safely('onMembership', () => cb(m))
  }

  private desired(): Set<PeerId> {
    const out = new Set<PeerId>()
    const inRoom = new Set(this.current.peers)
    const add = (p: PeerId) => {
      if (p !== this.self && inRoom.has(p)) out.add(p)
    }
    this.wanted.forEach(add)
    this.opts.neighbours?.(this.current, this.self).forEach(add)
    return out
  }

  /** Opens links to wanted peers and trims unwanted ones to the warm pool (LRU). */
  private reconcile(): void {
    if (this.closedMesh) return
    const want = this.desired()
    for (const p of want) this.ensureLink(p)
    const spare = [...this.links.values()].filter((l) => !want.has(l.peer)).sort((a, b) => a.lastUsed - b.lastUsed)
    while (spare.length > this.opts.warmLinks) this.dropLink(spare.shift()!, 'evicted from warm pool', true)
  }

  // ---- links ----

  private ensureLink(peer: PeerId): Link {
    const existing = this.links.get(peer)
    if (existing && !existing.closed) {
      if (!existing.connected && !existing.initiator) this.requestConnect(existing)
      return existing
    }
    const link = this.createLink(peer, this.self < peer)
    if (!link.initiator) this.requestConnect(link)
    return link
  }

  private requestConnect(link: Link): void {
    const now = Date.now()
    if (link.gotOffer || now - link.lastConnectRequest < CONNECT_REQUEST_INTERVAL_MS) return
    link.lastConnectRequest = now
    this.safely('connect-request', () => this.opts.signaling.signal(link.peer, { tabswarm: CONNECT_SIGNAL }))
  }

  private createLink(peer: PeerId, initiator: boolean): Link {
    const sp = new SimplePeer({
      initiator,
      trickle: true,
      // Never simple-peer's default (public STUN): the room's ICE servers, empty on a LAN.
      config: { iceServers: this.cfg('iceServers') as RTCIceServer[] },
      channelConfig: { ordered: true },
      ...(this.opts.wrtc ? { wrtc: this.opts.wrtc } : {}),
    })
    const stats = (this.perLink[peer] ??= { bytesSent: 0, bytesReceived: 0 })
    const link = new Link(peer, sp, initiator, new FrameAssembler({
      maxMessageBytes: this.cfg('maxMessageBytes'),
      schemaHash: () => this.schemaHashValue,
    }), stats)
    this.links.set(peer, link)
    link.armConnectTimer(this.opts.connectTimeoutMs, () => this.dropLink(link, 'connect timeout'))
    sp.on('signal', (data: unknown) =>
      this.safely('sp.signal', () => {
        if (!link.closed) this.opts.signaling.signal(peer, JSON.parse(JSON.stringify(data)) as Record<string, unknown>)
      }),
    )
    sp.on('connect', () =>
      this.safely('sp.connect', () => {
        if (link.closed) return
        link.markConnected()
        this.log('mesh.link-open', { peer })
        this.sendControl(link, {
          kind: CONTROL.hello.kind,
          meta: { protocol: PROTOCOL_VERSION, schemaHash: this.schemaHashValue, epoch: this.current.epoch },
        })
      }),
    )
    sp.on('data', (d: unknown) => this.safely('sp.data', () => this.onData(link, d)))
    sp.on('close', () => this.safely('sp.close', () => this.dropLink(link, 'closed by remote')))
    sp.on('error', (e: Error) => this.safely('sp.error', () => this.dropLink(link, `error: ${(e as { code?: string }).code ?? e.message}`)))
    return link
  }

  private dropLink(link: Link, reason: string, quiet = false): void {
    if (link.closed) return
    link.markClosed(reason)
    link.assembler.reset()
    if (this.links.get(link.peer) === link) this.links.delete(link.peer)
    try {
      link.sp.destroy()
    } catch {
      /* already destroyed */
    }
    if (!quiet) this.log('mesh.link-closed', { peer: link.peer, reason })
    // Re-dial a peer we still need (its link broke, it did not leave).
    if (!this.closedMesh && !link.byeReceived && this.desired().has(link.peer)) {
      const t = setTimeout(() => {
        this.reconnectTimers.delete(t)
        if (!this.closedMesh && this.desired().has(link.peer) && !this.links.has(link.peer)) this.ensureLink(link.peer)
      }, RECONNECT_DELAY_MS)
      this.reconnectTimers.add(t)
    }
  }

  private onSignal(from: PeerId, data: Record<string, unknown>): void {
    if (this.closedMesh || from === this.self || !this.current.peers.includes(from)) return
    const weInitiate = this.self < from
    if (data.tabswarm === CONNECT_SIGNAL) {
      if (weInitiate) this.ensureLink(from)
      return
    }
    let link = this.links.get(from)
    if (weInitiate) {
      // Only answers and candidates are valid from a higher id; an offer would be glare.
      if (!link || data.type === 'offer') return
    } else if (data.type === 'offer') {
      if (link && link.gotOffer) {
        // The initiator restarted this link: replace ours.
        this.dropLink(link, 'replaced by a new offer', true)
        link = undefined
      }
      link ??= this.createLink(from, false)
      link.gotOffer = true
    } else if (!link) return
    try {
      link.sp.signal(data as unknown as SimplePeer.SignalData)
    } catch (e) {
      this.dropLink(link, `bad signal: ${String(e)}`)
    }
  }

  // ---- receive ----

  private onData(link: Link, d: unknown): void {
    if (link.closed) return
    const bytes = toBytes(d)
    if (!bytes) return this.reject(link.peer, 'non-binary data-channel message')
    link.stats.bytesReceived += bytes.byteLength
    this.total.bytesReceived += bytes.byteLength
    link.lastUsed = Date.now()
    if (isRawFrame(bytes)) {
      link.rawReceived += bytes.byteLength
      return
    }
    const r = link.assembler.push(bytes)
    if (r.type === 'partial') return
    if (r.type === 'error') return this.reject(link.peer, r.reason)
    const w = fromWire(r.header, r.payload, link.peer, { expectedLength: this.opts.expectedLength })
    if (!w.ok) return this.reject(link.peer, w.reason)
    if (w.control) return this.onControl(link, w.message)
    this.clock.observe(w.envelope.clock)
    this.mailbox.deliver(w.envelope)
  }

  private onControl(link: Link, m: ControlMessage): void {
    switch (m.kind) {
      case 'mesh/hello':
        this.log('mesh.hello', { peer: link.peer, epoch: m.meta.epoch })
        return
      case 'mesh/bye':
        link.byeReceived = true
        this.dropLink(link, `bye: ${m.meta.reason}`)
        return
      case 'mesh/raw-done': {
        const received = link.rawReceived
        link.rawReceived = 0
        this.sendControl(link, { kind: CONTROL.rawAck.kind, meta: { run: m.meta.run, received } })
        return
      }
      case 'mesh/raw-ack':
        this.rawAcks.get(m.meta.run)?.(m.meta.received)
        return
    }
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

  private sendControl(link: Link, m: ControlMessage, signal?: AbortSignal): Promise<void> {
    const { header, payload } = toWire({ kind: m.kind, round: 0, meta: m.meta }, {
      epoch: this.current.epoch,
      clock: this.clock.value,
      schemaHash: this.schemaHashValue,
      compression: 'fp32',
    }, true)
    const frames = this.frames(link, header, payload)
    const p = this.enqueue(link, signal, () => this.writeFrames(link, frames))
    p.catch(() => {})
    return p
  }

  // ---- benchmarks ----

  /**
   * Raw data-channel throughput to `peer`: `bytes` in raw 64 KiB chunks with the same
   * backpressure as send(), timed until the receiver acknowledges having counted them all
   * (ordered channel, so the ack follows the last chunk).
   */
  async measureRawThroughput(peer: PeerId, bytes: number, signal?: AbortSignal): Promise<RawThroughput> {
    // Named bound so a vanished peer cannot hang a benchmark (its ack would never come).
    const sig = signal ?? deadline('mesh.raw-throughput', RAW_THROUGHPUT_DEADLINE_MS)
    if (!this.current.peers.includes(peer)) throw new PeerUnavailableError(peer, 'not in room')
    const link = this.ensureLink(peer)
    await this.waitConnected(link, sig)
    const run = ++this.rawRun
    const acked = new Promise<number>((resolve, reject) => {
      this.rawAcks.set(run, resolve)
      sig.addEventListener('abort', () => reject(sig.reason), { once: true })
    })
    const t0 = performance.now()
    let sent = 0
    await this.enqueue(link, sig, async () => {
      // Same backpressure policy as writeFrames, so the raw baseline and our exchange compare fairly.
      let bound = -1
      while (sent < bytes) {
        const f = rawFrame(Math.min(MAX_FRAME_BYTES, bytes - sent))
        bound = await this.writeFrame(link, f, bound)
        sent += f.byteLength
      }
    })
    await this.sendControl(link, { kind: CONTROL.rawDone.kind, meta: { run, bytes: sent } }, sig)
    const received = await acked
    this.rawAcks.delete(run)
    const ms = performance.now() - t0
    if (received !== sent) throw new Error(`raw throughput: sent ${sent} bytes, peer counted ${received}`)
    return { bytes: sent, ms, bytesPerSec: sent / (ms / 1000) }
  }

  /**
   * Fault injection (the bad-peer tests, classroom demos of what the swarm refuses): writes
   * `frames` straight onto the data channel to `peer`, bypassing framing and encoding. Queued
   * behind this link's earlier sends, so it may land between two messages but never inside one.
   */
  async writeRawFrames(peer: PeerId, frames: readonly Uint8Array[], signal?: AbortSignal): Promise<void> {
    if (!this.current.peers.includes(peer)) throw new PeerUnavailableError(peer, 'not in room')
    const link = this.ensureLink(peer)
    await this.waitConnected(link, signal)
    await this.enqueue(link, signal, () => this.writeFrames(link, frames))
  }

  /** Peers with an open data channel (diagnostics, tests). */
  connectedPeers(): PeerId[] {
    return [...this.links.values()].filter((l) => l.connected && !l.closed).map((l) => l.peer)
  }

  /** Link-level diagnostics for tests and the benchmark report. */
  diagnostics(): {
    links: PeerId[]; connected: PeerId[]; peakBufferedAmount: number; highWaterMark: number; framesSent: number; bufferedReads: number; dropped: Mailbox['dropped']
  } {
    return {
      links: [...this.links.keys()],
      connected: this.connectedPeers(),
      // An upper bound on the queue before each send (a reading, or a reading plus frames queued since).
      peakBufferedAmount: this.peakBuffered,
      framesSent: this.framesSent,
      bufferedReads: this.bufferedReads,
      highWaterMark: this.opts.highWaterMark,
      dropped: { ...this.mailbox.dropped },
    }
  }

  /** Says goodbye to connected peers (best effort), closes every link and stops listening. */
  async close(): Promise<void> {
    if (this.closedMesh) return
    const byes = [...this.links.values()]
      .filter((l) => l.connected)
      .map((l) => {
        const sig = deadline('mesh.bye', 1000)
        return this.sendControl(l, { kind: CONTROL.bye.kind, meta: { reason: 'leaving' } }, sig).catch(() => {})
      })
    await Promise.all(byes)
    this.closedMesh = true
    for (const u of this.unsubs) u()
    for (const t of this.reconnectTimers) clearTimeout(t)
    for (const l of [...this.links.values()]) this.dropLink(l, 'mesh closed', true)
  }
}
