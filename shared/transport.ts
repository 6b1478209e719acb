/**
 * The seam between algorithms and the network. Algorithms see only this file's types:
 * a flat Float32Array payload, string-tagged messages and cancellable waits. The in-memory
 * mesh (shared/testing/memory-mesh.ts) and the WebRTC mesh (client/mesh/webrtc-mesh.ts) both
 * implement `Mesh` and both pass shared/testing/mesh-compliance.ts.
 */
import type { LinkConnectivity } from './protocol/signaling'

export type PeerId = string

/** Announced by the signaling server on every join/leave (docs/algorithms.md "Message tagging and staleness"). */
export interface Membership {
  /** Strictly increasing per room; every message carries the sender's epoch. */
  readonly epoch: number
  /** Roster in join order. Topologies are computed from this order, so every peer agrees. */
  readonly peers: readonly PeerId[]
  /** Server-assigned roles: the parameter-server holder for asgd / od-sgd. */
  readonly roles: { readonly ps: PeerId | null }
}

/** What an algorithm sends. `(from, kind, round)` identifies a message: a mesh delivers each at most once. */
export interface MeshMessage {
  /** String tag, namespaced by algorithm: 'dpsgd/params', 'state/request', … */
  readonly kind: string
  /** Step or round number (or an exchange id for asynchronous protocols). */
  readonly round: number
  /** Small JSON side-channel (validated by the receiving algorithm with zod). */
  readonly meta?: Readonly<Record<string, unknown>>
  /** Flat vector payload (parameters, gradients, optimizer state…). */
  readonly data?: Float32Array
}

/** A received message, stamped by the mesh with the link it arrived on — never trusted from the payload. */
export interface Envelope extends MeshMessage {
  readonly from: PeerId
  readonly epoch: number
  /**
   * Sender's global progress counter, as the sender claims it. Nothing merges it on arrival: the
   * algorithm merges it (acceptClock) once the message passed its own checks, and only up to
   * ProgressClock.ceiling() (docs/algorithms.md "Global step").
   */
  readonly clock: number
}

export interface MessageFilter {
  readonly kind?: string | readonly string[]
  readonly round?: number
  readonly from?: PeerId
  /** Custom predicate, evaluated after the fields above. */
  readonly where?: (e: Envelope) => boolean
}

export interface LinkStats {
  bytesSent: number
  bytesReceived: number
  /** How a WebRTC link connects (client/mesh/connectivity.ts); absent on other meshes. */
  ice?: LinkConnectivity
}

export interface MeshStats extends LinkStats {
  readonly perLink: Readonly<Record<PeerId, LinkStats>>
  /** Messages rejected by validation (NaN, wrong shape, bad frames…) per sender. */
  readonly rejected: Readonly<Record<PeerId, number>>
}

export type Unsubscribe = () => void

export interface Mesh {
  readonly self: PeerId
  membership(): Membership
  onMembership(cb: (m: Membership) => void): Unsubscribe
  /**
   * Frames and sends `msg` to `to`, honouring backpressure. Resolves once handed to the link.
   * Rejects with PeerUnavailableError when there is no usable link (peer left, not connected by
   * the deadline) and with DeadlineError when `signal` aborts.
   */
  send(to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void>
  /** First buffered or future message matching `filter`; rejects with DeadlineError when `signal` aborts. */
  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope>
  /** Drops buffered messages matching `filter`; returns how many. */
  discard(filter: MessageFilter): number
  /**
   * Hint: the peers this node will talk to soon (its topology neighbours, the PS, a gossip
   * partner). Real meshes open or keep warm links to them; the memory mesh ignores it.
   */
  want(peers: readonly PeerId[]): void
  /** Report a peer that missed repeated deadlines; the server may drop it from the roster. */
  reportSuspect(peer: PeerId, reason: string): void
  /**
   * A delivered message from `peer` failed the algorithm's own checks (wrong length for this
   * round, NaN/Inf): count it in stats().rejected like a frame the mesh refused, and report the
   * peer as suspect after repeated rejections. Optional so thin test meshes need not implement it.
   */
  rejectFrom?(peer: PeerId, reason: string): void
  /**
   * In place: rounds `data` to exactly what a receiver of a `kind` message decodes (the room's
   * lossy wire codec, without error feedback). An all-reduce owner applies it to the chunk it
   * broadcasts, so it keeps the same values as everyone else. Identity (or absent) for fp32.
   */
  wireImage?(kind: string, data: Float32Array): void
  /**
   * Global progress counter: the max of our own and the counters of the accepted messages (see
   * acceptClock), each bounded by the clock's ceiling.
   */
  readonly clock: ProgressClock
  stats(): MeshStats
}

/**
 * How far a remote clock may lead the progress this peer can vouch for (its own, or the room's
 * as the server publishes it): lock-step skew, a parameter server's lead over its workers, a
 * tab that was in the background for a while. The server's own slack for a checkpoint's step
 * (signaling-server/rooms.ts CHECKPOINT_STEP_SLACK_STEPS).
 */
export const CLOCK_SLACK_STEPS = 1_000
/**
 * ...plus this many steps per second since that progress was known: the fastest the server
 * believes a run's step counter can grow (signaling-server/rooms.ts MAX_STEPS_PER_SEC).
 */
export const CLOCK_MAX_STEPS_PER_SEC = 1_000

export interface ProgressClockOptions {
  slackSteps?: number
  maxStepsPerSec?: number
  /** Milliseconds, monotonic (default performance.now). */
  now?: () => number
  /**
   * The room's progress now, where it is known live (the in-memory network stands in for the
   * server this way); null when unknown. Takes precedence over setRoomProgress.
   */
  roomProgress?: () => number | null
}

/**
 * Max-merged global progress counter (swarm steps). Schedules key off it, not local step counts.
 *
 * Bounded (docs/security.md): a remote counter — a message's clock, a joiner's bootstrap counters — is
 * merged only when it is at most `ceiling()`: the larger of this peer's own progress and the
 * room's published progress, plus CLOCK_SLACK_STEPS, plus CLOCK_MAX_STEPS_PER_SEC for every
 * second since that room progress (or, without one, this clock) was taken. Own progress
 * (`advance`: steps taken, a checkpoint, a kept model) is trusted and raises the floor the
 * ceiling is measured from; remote merges never do, so a peer pushing its clock to just below the
 * ceiling again and again cannot walk it upwards.
 */
export class ProgressClock {
  private v = 0
  /** Progress this peer vouches for: the sum of what advance() added, never a remote merge. */
  private own = 0
  private room: { step: number; at: number } | null = null
  private readonly since: number
  private readonly slack: number
  private readonly rate: number
  private readonly now: () => number
  private readonly live?: () => number | null
  /** Remote counters that were beyond the ceiling and so not merged. */
  refused = 0

  constructor(opts: ProgressClockOptions = {}) {
    this.slack = opts.slackSteps ?? CLOCK_SLACK_STEPS
    this.rate = opts.maxStepsPerSec ?? CLOCK_MAX_STEPS_PER_SEC
    this.now = opts.now ?? (() => performance.now())
    this.live = opts.roomProgress
    this.since = this.now()
  }

  get value(): number {
    return this.v
  }

  /** The highest remote counter believed now (see the class comment). */
  ceiling(): number {
    const now = this.now()
    const live = this.live?.()
    const base = live !== null && live !== undefined && Number.isFinite(live) ? { step: live, at: now } : this.room ?? { step: 0, at: this.since }
    return Math.max(this.own, base.step) + this.slack + (this.rate * Math.max(0, now - base.at)) / 1000
  }

  /**
   * The room's progress as the server publishes it (e.g. the median reported global step of the
   * roster): the ceiling is measured from it, from now on.
   */
  setRoomProgress(step: number): void {
    if (Number.isFinite(step) && step >= 0) this.room = { step, at: this.now() }
  }

  /**
   * Merges a remote counter (a message the algorithm accepted, a bootstrap counter). Returns
   * false, merging nothing, when it is not a finite number ≥ 0 or is beyond `ceiling()`.
   */
  observe(remote: number): boolean {
    if (!Number.isFinite(remote) || remote < 0) {
      this.refused++
      return false
    }
    if (remote <= this.v) return true
    if (remote > this.ceiling()) {
      this.refused++
      return false
    }
    this.v = remote
    return true
  }

  /** This peer's own progress (steps it took, a checkpoint, a kept model): trusted, unbounded. */
  advance(to: number): void {
    if (!Number.isFinite(to) || to <= this.v) return
    this.own += to - this.v
    this.v = to
  }
}

/**
 * Merges the clock of `e`, a message that passed the algorithm's own checks, into the mesh's
 * progress clock. A clock beyond the ceiling is not merged and counts as a rejected message of
 * its sender (Mesh.rejectFrom: the suspect path). Returns whether the clock was believed.
 */
export function acceptClock(mesh: Pick<Mesh, 'clock' | 'rejectFrom'>, e: Pick<Envelope, 'from' | 'clock'>): boolean {
  if (mesh.clock.observe(e.clock)) return true
  mesh.rejectFrom?.(e.from, `clock ${e.clock} beyond the bound ${Math.floor(mesh.clock.ceiling())}`)
  return false
}

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError'
  readonly code = 'ERR_DEADLINE'
  constructor(readonly deadline: string) {
    super(`deadline '${deadline}' passed`)
  }
}

export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError'
  readonly code = 'ERR_PEER_UNAVAILABLE'
  constructor(readonly peer: PeerId, reason = 'no link') {
    super(`peer ${peer} unavailable: ${reason}`)
  }
}

/**
 * A named, cancellable deadline (docs/architecture.md "Named deadlines"). `parent` cancels it early (session stop);
 * the abort reason is a DeadlineError carrying the name so logs say which wait expired.
 */
export function deadline(name: string, ms: number, parent?: AbortSignal): AbortSignal {
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(new DeadlineError(name)), Math.max(0, ms))
  const onParent = () => {
    clearTimeout(timer)
    ctl.abort(parent?.reason ?? new DeadlineError(name))
  }
  if (parent) {
    if (parent.aborted) onParent()
    else parent.addEventListener('abort', onParent, { once: true })
  }
  ctl.signal.addEventListener('abort', () => {
    clearTimeout(timer)
    parent?.removeEventListener('abort', onParent)
  }, { once: true })
  return ctl.signal
}

export interface ScopedDeadline {
  readonly signal: AbortSignal
  /** Releases the timer and the listeners once the wait is over. */
  done(): void
}

/**
 * A named deadline that also aborts when any of `signals` does (the session stop, a partner
 * leaving, a roster change…), with that signal's reason. `done()` releases it early, so a wait
 * that finished leaves no timer behind.
 */
export function scopedDeadline(name: string, ms: number, ...signals: AbortSignal[]): ScopedDeadline {
  const ctl = new AbortController()
  const signal = deadline(name, ms, AbortSignal.any([...signals, ctl.signal]))
  return { signal, done: () => ctl.abort() }
}

/** Resolves after `ms` or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export function isDeadline(e: unknown): e is DeadlineError {
  return e instanceof Error && e.name === 'DeadlineError'
}

/**
 * Lets pending microtasks (mesh sends) and ready I/O callbacks run, without the ≥1 ms (Node) /
 * ≥4 ms (nested, browsers) clamp of setTimeout(0): setImmediate in Node, a MessageChannel
 * message in browsers and workers.
 */
export const yieldToEventLoop: () => Promise<void> = (() => {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown }
  if (typeof g.setImmediate === 'function') {
    const si = g.setImmediate
    return () => new Promise<void>((resolve) => void si(resolve))
  }
  if (typeof MessageChannel === 'function') {
    const ch = new MessageChannel()
    const waiting: (() => void)[] = []
    ch.port1.onmessage = () => waiting.shift()?.()
    return () => new Promise<void>((resolve) => {
      waiting.push(resolve)
      ch.port2.postMessage(0)
    })
  }
  return () => new Promise<void>((resolve) => setTimeout(resolve, 0))
})()
