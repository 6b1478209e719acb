import SimplePeer from 'simple-peer'
import type { CandidateType, LinkConnectivity } from '../../shared/protocol/signaling'
import type { ShapedLink } from '../../shared/link-conditions'
import { DeadlineError, PeerUnavailableError, type LinkStats, type PeerId } from '../../shared/transport'
import { candidateTypeOf, sampleConnectivity } from './connectivity'
import { reportingWrtc, type DataChannelLike, type WrtcImpl } from './data-channel'
import { FrameSender, type TrafficCounters } from './frame-sender'

/** What a link tells its owner. Each call runs inside the owner's `safely` guard. */
export interface LinkEvents {
  /** Signaling data (offer, answer, candidate) to relay to the remote peer. */
  signal(data: Record<string, unknown>): void
  /** The data channel opened. */
  open(): void
  /** One data-channel message; null when it was not binary. */
  message(bytes: Uint8Array | null): void
  /** The connection failed or the remote closed it; the owner decides what follows. */
  down(reason: string): void
}

export interface LinkOptions {
  peer: PeerId
  initiator: boolean
  iceServers: RTCIceServer[]
  /** 'relay': TURN relays only (the room's iceTransportPolicy). */
  iceTransportPolicy: RTCIceTransportPolicy
  /** Node: the WebRTC implementation. Browser: undefined. */
  wrtc?: WrtcImpl
  /** The link reports itself down if not connected by then. */
  connectTimeoutMs: number
  highWaterMark: number
  lowWaterMark: number
  counters: TrafficCounters
  /** Emulated link conditions for this link's outgoing frames (null: none). Closed with the link. */
  shaped?: ShapedLink | null
  events: LinkEvents
  safely: (where: string, fn: () => void) => void
}

/**
 * One peer connection: a simple-peer instance (signaling, ICE, channel lifecycle) whose ordered
 * data channel carries frames both ways. The link knows nothing of what the frames mean.
 */
export class Link {
  readonly peer: PeerId
  readonly initiator: boolean
  readonly stats: LinkStats
  connected = false
  closed = false
  /** Answering side: the initiator's offer arrived (stop asking for one). */
  gotOffer = false
  /** The peer said goodbye: do not re-dial it. */
  byeReceived = false
  lastUsed = Date.now()
  lastConnectRequest = 0
  /** The last connectivity sample (sampleConnectivity); null until one succeeded. */
  connectivity: LinkConnectivity | null = null
  private nextMsgId = 0
  private channelSeen: DataChannelLike | null = null
  private pc: RTCPeerConnection | null = null
  /** Candidate types this side gathered, from 'icecandidate' events (at most the four types). */
  private readonly gathered = new Set<CandidateType>()
  private readonly sp: SimplePeer.Instance
  private readonly sender: FrameSender
  private readonly waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>()
  private readonly connectTimer: ReturnType<typeof setTimeout>

  constructor(private readonly o: LinkOptions) {
    this.peer = o.peer
    this.initiator = o.initiator
    this.stats = o.counters.perLink[o.peer] ??= { bytesSent: 0, bytesReceived: 0 }
    const wrtc = reportingWrtc(o.wrtc, (ch) => (this.channelSeen = ch), (pc) => {
      this.pc = pc
      pc.addEventListener('icecandidate', (e: RTCPeerConnectionIceEvent) => {
        const t = candidateTypeOf(e.candidate?.candidate)
        if (t) this.gathered.add(t)
      })
    })
    this.sp = new SimplePeer({
      initiator: o.initiator,
      trickle: true,
      // Never simple-peer's default (public STUN): the room's and the server's ICE servers, none on a LAN.
      config: { iceServers: o.iceServers, iceTransportPolicy: o.iceTransportPolicy },
      channelConfig: { ordered: true },
      ...(wrtc ? { wrtc } : {}),
    })
    this.sender = new FrameSender({
      peer: o.peer,
      channel: () => this.channel(),
      highWaterMark: o.highWaterMark,
      lowWaterMark: o.lowWaterMark,
      stats: this.stats,
      counters: o.counters,
      onSendFailed: (reason) => o.events.down(reason),
      shaped: o.shaped,
    })
    this.connectTimer = setTimeout(() => {
      if (!this.connected && !this.closed) o.safely('link.connect-timeout', () => o.events.down('connect timeout'))
    }, o.connectTimeoutMs)
    this.listen()
  }

  private listen(): void {
    const { events, safely } = this.o
    this.sp.on('signal', (data: unknown) => safely('sp.signal', () => {
      if (!this.closed) events.signal(JSON.parse(JSON.stringify(data)) as Record<string, unknown>)
    }))
    this.sp.on('connect', () => safely('sp.connect', () => {
      if (this.closed) return
      this.markConnected()
      events.open()
    }))
    this.sp.on('data', (d: unknown) => safely('sp.data', () => this.onData(d)))
    this.sp.on('close', () => safely('sp.close', () => events.down('closed by remote')))
    this.sp.on('error', (e: Error) => safely('sp.error', () => events.down(`error: ${(e as { code?: string }).code ?? e.message}`)))
  }

  /**
   * The channel while the link is open. simple-peer lets go of its channel in the same task in
   * which it emits 'close' (or 'error'), which closes this link, so both agree on when it ends.
   */
  private channel(): DataChannelLike | null {
    return this.closed ? null : this.channelSeen
  }

  /** Refreshes `connectivity` from the connection's stats (one getStats() call; never throws). */
  async sampleConnectivity(): Promise<void> {
    if (!this.pc || this.closed) return
    const c = await sampleConnectivity(this.pc, this.gathered)
    if (c && !this.closed) this.connectivity = c
  }

  /** Signaling data from the remote peer. Throws on data simple-peer refuses. */
  signal(data: Record<string, unknown>): void {
    this.sp.signal(data as unknown as SimplePeer.SignalData)
  }

  /**
   * The next message id. Ids follow the order of send() calls, which is the order the frames go
   * out; a message cancelled before it started leaves a gap, which the receiver does not mind.
   */
  takeMessageId(): number {
    const id = this.nextMsgId
    this.nextMsgId = (this.nextMsgId + 1) >>> 0
    return id
  }

  /** Writes `frames` after this link's earlier sends, with backpressure (see FrameSender). */
  send(frames: Iterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    return this.sender.enqueue(signal, () => this.sender.writeFrames(frames, signal))
  }

  private onData(d: unknown): void {
    if (this.closed) return
    const bytes = toBytes(d)
    if (!bytes) return this.o.events.message(null)
    this.stats.bytesReceived += bytes.byteLength
    this.o.counters.total.bytesReceived += bytes.byteLength
    this.lastUsed = Date.now()
    this.o.events.message(bytes)
  }

  private markConnected(): void {
    this.connected = true
    clearTimeout(this.connectTimer)
    for (const w of this.waiters) w.resolve()
    this.waiters.clear()
  }

  /** Closes the connection; pending waits reject with PeerUnavailableError. False if already closed. */
  close(reason: string): boolean {
    if (this.closed) return false
    this.closed = true
    this.connected = false
    clearTimeout(this.connectTimer)
    for (const w of this.waiters) w.reject(new PeerUnavailableError(this.peer, reason))
    this.waiters.clear()
    this.o.shaped?.close()
    try {
      this.sp.destroy()
    } catch {
      /* already destroyed */
    }
    return true
  }

  /**
   * Waits for the channel under the named deadline `mesh.connect:<peer>`; on expiry rejects with
   * PeerUnavailableError, on the caller's abort with the caller's reason.
   */
  async waitConnected(signal?: AbortSignal): Promise<void> {
    if (this.connected) return
    const ms = this.o.connectTimeoutMs
    const ctl = new AbortController()
    const timer = setTimeout(() => ctl.abort(new DeadlineError(`mesh.connect:${this.peer}`)), ms)
    const onParent = () => ctl.abort(signal?.reason ?? new DeadlineError('mesh.send'))
    signal?.addEventListener('abort', onParent, { once: true })
    try {
      await this.whenConnected(ctl.signal)
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e
      if (e instanceof DeadlineError) throw new PeerUnavailableError(this.peer, `not connected within ${ms} ms`)
      throw e
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onParent)
    }
  }

  private whenConnected(signal: AbortSignal): Promise<void> {
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
