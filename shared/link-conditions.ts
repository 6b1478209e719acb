/**
 * Emulated network conditions on a mesh's links (docs/architecture.md "Link conditions"): a
 * seeded, named profile of one-way delay with jitter, a bandwidth cap on each peer's uplink and
 * loss. One implementation serves the WebRTC mesh (client/mesh/frame-sender.ts holds each frame
 * here before it goes onto the data channel) and the in-memory mesh of tests and the simulator
 * (shared/testing/memory-mesh.ts holds each message).
 *
 * Our data channels are reliable and ordered (SCTP), so a lost packet is never a lost message:
 * SCTP retransmits it and holds every later message of that channel until it arrives. `lossRate`
 * is emulated that way — a lost frame arrives one RTT per loss later (a fast retransmit after the
 * selective ack shows the gap), its bytes go over the uplink again, and everything behind it on
 * the link waits (head-of-line blocking). Algorithms never see a dropped, torn or reordered
 * frame, because the real channel never shows them one either.
 */
import { z } from 'zod'
import { mulberry32 } from './math/random'
import { DeadlineError, PeerUnavailableError } from './transport'

export const LINK_PROFILES = ['lan', 'wan', 'slow', 'lossy'] as const
export type LinkProfileName = (typeof LINK_PROFILES)[number]
export const linkProfileSchema = z.enum(LINK_PROFILES)

export interface LinkProfile {
  readonly name: LinkProfileName
  /** Mean one-way delay per link (half the RTT). */
  readonly oneWayMs: number
  /** Each frame's delay is uniform in oneWayMs ± jitterMs (order is kept, see LinkShaper). */
  readonly jitterMs: number
  /** The peer's uplink, shared by all its links, in bytes per second; null: uncapped. */
  readonly uplinkBytesPerSec: number | null
  /** Probability that a frame's transmission is lost (and retransmitted one RTT later). */
  readonly lossRate: number
}

const MBIT = 1_000_000 / 8

/** The catalogue. `lan` adds nothing: the shaper is not installed at all. */
export const LINK_PROFILE_TABLE: Readonly<Record<LinkProfileName, LinkProfile>> = {
  lan: { name: 'lan', oneWayMs: 0, jitterMs: 0, uplinkBytesPerSec: null, lossRate: 0 },
  wan: { name: 'wan', oneWayMs: 20, jitterMs: 2, uplinkBytesPerSec: 50 * MBIT, lossRate: 0 },
  slow: { name: 'slow', oneWayMs: 75, jitterMs: 7.5, uplinkBytesPerSec: 10 * MBIT, lossRate: 0 },
  lossy: { name: 'lossy', oneWayMs: 20, jitterMs: 2, uplinkBytesPerSec: 50 * MBIT, lossRate: 0.02 },
}

/**
 * A burst the uplink may send at once after idling (token-bucket depth): one 64 KiB frame, so a
 * message's first frame is not held, while a bulk transfer still runs at the cap.
 */
export const UPLINK_BURST_BYTES = 64 * 1024
/** Per link, bytes handed to the shaper and not yet delivered before the sender must wait. */
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024

/** Time and timers, injectable so unit tests run on a virtual clock. */
export interface LinkClock {
  now(): number
  setTimer(fn: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
}

export const REAL_CLOCK: LinkClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/** A stable 32-bit seed from a string (a peer id), FNV-1a. */
export function seedFrom(s: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

export interface UplinkOptions {
  seed: number
  clock?: LinkClock
  maxQueuedBytes?: number
}

/**
 * One peer's uplink: a token bucket (as GCRA virtual time) shared by all of its links, and a
 * seeded source of their delays. Null for `lan` (see linkConditions).
 */
export class Uplink {
  readonly clock: LinkClock
  readonly maxQueuedBytes: number
  private readonly rand: () => number
  /** GCRA: the time the bucket would be full again; a frame departs once its bytes fit. */
  private tat = -Infinity
  private readonly links = new Set<ShapedLink>()

  constructor(readonly profile: LinkProfile, o: UplinkOptions) {
    this.clock = o.clock ?? REAL_CLOCK
    this.rand = mulberry32(o.seed)
    this.maxQueuedBytes = o.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
  }

  /** A new link out of this uplink (one per peer connection; close it with the connection). */
  link(peer: string): ShapedLink {
    const l = new ShapedLink(this, peer)
    this.links.add(l)
    return l
  }

  /** Resolves once no link of this uplink holds anything (a closing mesh lets its byes arrive). */
  idle(): Promise<void> {
    return Promise.all([...this.links].map((l) => l.idle())).then(() => {})
  }

  /** Closes every link (the mesh closes). */
  close(): void {
    for (const l of [...this.links]) l.close()
  }

  /** @internal */
  forget(l: ShapedLink): void {
    this.links.delete(l)
  }

  /**
   * @internal When `bytes` handed over now arrive at the far end: departure from the shared
   * uplink, plus the one-way delay with jitter, plus one RTT per loss (bytes resent each time).
   */
  arrival(bytes: number): number {
    const p = this.profile
    const now = this.clock.now()
    let losses = 0
    while (p.lossRate > 0 && losses < 16 && this.rand() < p.lossRate) losses++
    let depart = now
    if (p.uplinkBytesPerSec !== null) {
      const per = 1000 / p.uplinkBytesPerSec
      const burst = UPLINK_BURST_BYTES * per
      this.tat = Math.max(this.tat, now - burst) + bytes * (1 + losses) * per
      depart = Math.max(now, this.tat - burst)
    }
    const delay = p.oneWayMs + p.jitterMs * (2 * this.rand() - 1)
    return depart + Math.max(0, delay) + losses * 2 * p.oneWayMs
  }
}

interface Held {
  at: number
  bytes: number
  deliver: () => void
}

/**
 * One link's side of an Uplink: holds what is handed to it until its emulated arrival and then
 * calls `deliver`, in the order handed over (the channel is ordered: a frame never overtakes an
 * earlier one, so jitter and retransmissions delay what follows). At most maxQueuedBytes are held;
 * a sender beyond it waits in send() — backpressure, never a drop.
 */
export class ShapedLink {
  private readonly queue: Held[] = []
  private head = 0
  private lastAt = -Infinity
  private timer: unknown = null
  /** A waiter was let in and has not counted its bytes yet: newcomers queue behind it. */
  private admitting = false
  private readonly waiters: { need: number; resolve: () => void; reject: (e: Error) => void }[] = []
  /** Bytes handed over and not yet delivered. */
  queuedBytes = 0
  /** Largest queuedBytes seen (tests check the bound). */
  peakQueuedBytes = 0
  closed = false
  private readonly idleWaiters: (() => void)[] = []

  constructor(private readonly up: Uplink, readonly peer: string) {}

  /** Resolves once nothing is held (at once when empty or closed). */
  idle(): Promise<void> {
    if (this.queuedBytes === 0 || this.closed) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Resolves once `bytes` are held (after waiting for room, see the class comment); `deliver`
   * runs at their arrival time unless the link closes first. Rejects with the signal's reason on
   * abort and with PeerUnavailableError once closed.
   */
  async send(bytes: number, deliver: () => void, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new PeerUnavailableError(this.peer, 'link closed')
    if (signal?.aborted) throw signal.reason ?? new DeadlineError('mesh.send')
    // Senders queue in call order (the memory mesh's concurrent sends to one peer keep their order).
    if (this.admitting || this.waiters.length > 0 || !this.fits(bytes)) await this.room(bytes, signal)
    this.admitting = false
    if (this.closed) throw new PeerUnavailableError(this.peer, 'link closed')
    const at = Math.max(this.up.arrival(bytes), this.lastAt)
    this.lastAt = at
    this.queue.push({ at, bytes, deliver })
    this.queuedBytes += bytes
    if (this.queuedBytes > this.peakQueuedBytes) this.peakQueuedBytes = this.queuedBytes
    if (this.timer === null) this.arm()
    this.wake()
  }

  /** One item bigger than the bound still goes, alone, so a big message cannot deadlock. */
  private fits(bytes: number): boolean {
    return this.queuedBytes === 0 || this.queuedBytes + bytes <= this.up.maxQueuedBytes
  }

  private room(need: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason ?? new DeadlineError('mesh.send'))
      const w = {
        need,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      const onAbort = () => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(signal?.reason ?? new DeadlineError('mesh.send'))
        this.wake()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(w)
    })
  }

  /** Lets the first waiter in once its bytes fit; it counts them before the next one is let in. */
  private wake(): void {
    if (this.admitting || this.closed) return
    const w = this.waiters[0]
    if (!w || !this.fits(w.need)) return
    this.waiters.shift()
    this.admitting = true
    w.resolve()
  }

  private arm(): void {
    const next = this.queue[this.head]
    if (!next) return
    this.timer = this.up.clock.setTimer(() => this.fire(), Math.max(0, next.at - this.up.clock.now()))
  }

  private fire(): void {
    this.timer = null
    const now = this.up.clock.now()
    while (this.head < this.queue.length && this.queue[this.head].at <= now) {
      const h = this.queue[this.head++]
      this.queuedBytes -= h.bytes
      try {
        h.deliver()
      } catch {
        // The receiver's bug must not stall the link.
      }
    }
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head)
      this.head = 0
    }
    if (this.queuedBytes === 0) for (const r of this.idleWaiters.splice(0)) r()
    if (this.closed) return
    this.wake()
    this.arm()
  }

  /** Drops what is held (the connection is gone, as a real one would lose it) and fails waiters. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.timer !== null) this.up.clock.clearTimer(this.timer)
    this.timer = null
    this.queue.length = 0
    this.head = 0
    this.queuedBytes = 0
    this.admitting = false
    for (const r of this.idleWaiters.splice(0)) r()
    for (const w of this.waiters.splice(0)) w.reject(new PeerUnavailableError(this.peer, 'link closed'))
    this.up.forget(this)
  }
}

/** The uplink for a profile, or null when it adds nothing (`lan`): callers skip shaping entirely. */
export function linkConditions(name: LinkProfileName, o: UplinkOptions): Uplink | null {
  const p = LINK_PROFILE_TABLE[name]
  if (p.oneWayMs === 0 && p.jitterMs === 0 && p.uplinkBytesPerSec === null && p.lossRate === 0) return null
  return new Uplink(p, o)
}
