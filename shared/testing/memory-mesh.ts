import { Mailbox } from '../mailbox'
import {
  DeadlineError, PeerUnavailableError, ProgressClock,
  type Envelope, type LinkStats, type Membership, type Mesh, type MeshMessage, type MeshStats,
  type MessageFilter, type PeerId, type Unsubscribe,
} from '../transport'
import { linkConditions, seedFrom, type LinkClock, type LinkProfileName, type ShapedLink, type Uplink } from '../link-conditions'
import { NO_FAULTS, type FaultConfig } from './faults'
import { mulberry32 } from './random'
import type { MeshHarness } from './mesh-compliance'

/** Bytes charged per message besides the payload (ids, kind, round, epoch, clock). */
export const HEADER_BYTES = 32

function messageBytes(msg: MeshMessage): number {
  return HEADER_BYTES + (msg.data ? msg.data.length * 4 : 0) + (msg.meta ? JSON.stringify(msg.meta).length : 0)
}

/**
 * In-process network of peers with seeded faults: the mesh of deterministic tests and the
 * simulator. Membership follows the signaling server's rules (docs/algorithms.md "Message tagging and staleness"): every join/leave bumps
 * the epoch and re-announces the roster to everyone; the PS role moves to the first peer when
 * its holder leaves.
 */
export class MemoryNetwork {
  private readonly meshes = new Map<PeerId, MemoryMesh>()
  private peers: PeerId[] = []
  private epoch = 0
  private ps: PeerId | null = null
  private readonly rand: () => number
  private nextId = 0
  faults: FaultConfig
  /** Emulated link conditions (shared/link-conditions.ts) for peers that join from now on. */
  readonly link: LinkProfileName
  private readonly seed: number
  private readonly linkClock?: LinkClock

  constructor(opts: { seed?: number; faults?: FaultConfig; link?: LinkProfileName; clock?: LinkClock } = {}) {
    this.seed = opts.seed ?? 1
    this.rand = mulberry32(this.seed)
    this.faults = opts.faults ?? NO_FAULTS
    this.link = opts.link ?? 'lan'
    this.linkClock = opts.clock
  }

  membership(): Membership {
    return { epoch: this.epoch, peers: [...this.peers], roles: { ps: this.ps } }
  }

  /** Adds a peer (a fresh id unless given) and announces the new roster to everyone. */
  join(id?: PeerId): MemoryMesh {
    const pid = id ?? `p${this.nextId++}`
    if (this.meshes.has(pid)) throw new Error(`peer ${pid} already joined`)
    const uplink = linkConditions(this.link, { seed: seedFrom(pid, this.seed), ...(this.linkClock ? { clock: this.linkClock } : {}) })
    const mesh = new MemoryMesh(this, pid, uplink)
    this.meshes.set(pid, mesh)
    this.peers.push(pid)
    if (this.ps === null) this.ps = pid
    this.bump()
    return mesh
  }

  /** Removes a peer (tab closed); its pending sends fail and it gets no more messages. */
  leave(id: PeerId): void {
    const m = this.meshes.get(id)
    if (!m) return
    this.meshes.delete(id)
    this.peers = this.peers.filter((p) => p !== id)
    if (this.ps === id) this.ps = this.peers[0] ?? null
    m.closed = true
    m.uplink?.close()
    this.bump()
  }

  mesh(id: PeerId): MemoryMesh | undefined {
    return this.meshes.get(id)
  }

  /**
   * The room's progress as a server would publish it to `self`: the lower median of the other
   * peers' clocks (null when alone), so one peer with a huge clock cannot stretch anyone's
   * ceiling (ProgressClock.ceiling). Tests that model a server with another view set `progress`.
   */
  roomProgress(self: PeerId): number | null {
    if (this.progress) return this.progress(self)
    const others: number[] = []
    for (const [id, m] of this.meshes) if (id !== self) others.push(m.clock.value)
    if (others.length === 0) return null
    others.sort((a, b) => a - b)
    return others[(others.length - 1) >> 1]
  }

  /** Overrides roomProgress (a test's stand-in for the server's published progress). */
  progress: ((self: PeerId) => number | null) | null = null

  private bump(): void {
    this.epoch++
    const m = this.membership()
    for (const mesh of this.meshes.values()) mesh.announce(m)
  }

  /**
   * @internal Without link conditions the message is on its way when this returns; with them,
   * when the returned promise resolves (the link had room for it: backpressure).
   */
  transmit(from: MemoryMesh, to: PeerId, msg: MeshMessage, signal?: AbortSignal): void | Promise<void> {
    const dest = this.meshes.get(to)
    if (!dest || from.closed) throw new PeerUnavailableError(to, from.closed ? 'sender left' : 'not in roster')
    const bytes = messageBytes(msg)
    const shaped = from.shapedLink(to)
    if (!shaped) {
      from.countSent(to, bytes)
      this.route(from, dest, msg, bytes)
      return
    }
    // Copied now, as a real link frames it at send(): the caller may reuse msg.data at once.
    const copy: MeshMessage = { ...msg, ...(msg.meta ? { meta: JSON.parse(JSON.stringify(msg.meta)) as Record<string, unknown> } : {}), ...(msg.data ? { data: new Float32Array(msg.data) } : {}) }
    const epoch = from.membership().epoch
    const clock = from.clock.value
    return shaped.send(bytes, () => this.route(from, dest, copy, bytes, { epoch, clock }, true), signal).then(() => from.countSent(to, bytes))
  }

  /** Applies the faults and delivers (after their latency) to `dest` if it is still in the room. */
  private route(from: MemoryMesh, dest: MemoryMesh, msg: MeshMessage, bytes: number, stamp?: { epoch: number; clock: number }, owned = false): void {
    const to = dest.self
    const f = this.faults
    if (f.silent.includes(from.self)) return
    if (f.dropRate > 0 && this.rand() < f.dropRate) return
    let delay = f.latencyMs[0] + (f.latencyMs[1] - f.latencyMs[0]) * this.rand()
    if (f.reorderRate > 0 && this.rand() < f.reorderRate) delay += f.reorderMs * this.rand()
    delay *= f.slowPeers[from.self] ?? 1
    // Copy the payload (unless transmit already did): a real link serialises, so the sender may reuse its buffer at once.
    const env: Envelope = {
      kind: msg.kind, round: msg.round,
      ...(msg.meta ? { meta: owned ? msg.meta : JSON.parse(JSON.stringify(msg.meta)) as Record<string, unknown> } : {}),
      ...(msg.data ? { data: owned ? msg.data : new Float32Array(msg.data) } : {}),
      from: from.self, epoch: stamp?.epoch ?? from.membership().epoch, clock: stamp?.clock ?? from.clock.value,
    }
    const deliver = () => {
      const d = this.meshes.get(to)
      if (d === dest) dest.accept(env, bytes)
    }
    if (delay <= 0) queueMicrotask(deliver)
    else setTimeout(deliver, delay)
  }
}

/** The compliance suite's harness (mesh-compliance.ts) over a fresh MemoryNetwork of `n` peers. */
export function memoryMeshHarness(opts: ConstructorParameters<typeof MemoryNetwork>[0], n: number): MeshHarness {
  const net = new MemoryNetwork(opts)
  const meshes = Array.from({ length: n }, () => net.join())
  return {
    meshes,
    leave: async (i) => net.leave(meshes[i].self),
    close: async () => {},
    inject: (i, e) => meshes[i].accept(e),
  }
}

export class MemoryMesh implements Mesh {
  /**
   * Merged by the algorithms from the messages they accept (acceptClock), never on arrival;
   * bounded by the network's live room progress (MemoryNetwork.roomProgress).
   */
  readonly clock: ProgressClock
  /** No wire codec here (payloads pass by value); tests that model one set this. */
  wireImage?: (kind: string, data: Float32Array) => void
  private readonly mailbox = new Mailbox()
  private readonly listeners = new Set<(m: Membership) => void>()
  private current: Membership
  private sent = 0
  private received = 0
  private readonly perLink: Record<PeerId, LinkStats> = {}
  private readonly rejected: Record<PeerId, number> = {}
  readonly suspects: { peer: PeerId; reason: string }[] = []
  /** Peers passed to the last want() (tests inspect it). */
  wanted: readonly PeerId[] = []
  closed = false

  private readonly shaped = new Map<PeerId, ShapedLink>()

  constructor(private readonly net: MemoryNetwork, readonly self: PeerId, readonly uplink: Uplink | null = null) {
    this.current = net.membership()
    this.clock = new ProgressClock({ roomProgress: () => net.roomProgress(self) })
  }

  membership(): Membership {
    return this.current
  }

  onMembership(cb: (m: Membership) => void): Unsubscribe {
    this.listeners.add(cb)
    return () => this.listeners.delete(cb)
  }

  /** @internal */
  announce(m: Membership): void {
    this.current = m
    this.mailbox.setMinEpoch(m.epoch)
    for (const cb of [...this.listeners]) {
      try {
        cb(m)
      } catch {
        // A listener's bug must not break the network's announcement loop.
      }
    }
  }

  send(to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason ?? new DeadlineError('send'))
    try {
      return this.net.transmit(this, to, msg, signal) ?? Promise.resolve()
    } catch (e) {
      return Promise.reject(e)
    }
  }

  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope> {
    return this.mailbox.receive(filter, signal)
  }

  discard(filter: MessageFilter): number {
    return this.mailbox.discard(filter)
  }

  want(peers: readonly PeerId[]): void {
    this.wanted = [...peers]
  }

  reportSuspect(peer: PeerId, reason: string): void {
    this.suspects.push({ peer, reason })
  }

  rejectFrom(peer: PeerId, reason: string): void {
    const n = (this.rejected[peer] = (this.rejected[peer] ?? 0) + 1)
    // Same policy as WebRtcMesh: every third rejection from a peer is a suspect report.
    if (n % 3 === 0) this.reportSuspect(peer, `rejected ${n} messages (last: ${reason})`)
  }

  stats(): MeshStats {
    return {
      bytesSent: this.sent, bytesReceived: this.received,
      perLink: structuredClone(this.perLink), rejected: { ...this.rejected },
    }
  }

  /** @internal This peer's emulated link to `to` (null without link conditions). */
  shapedLink(to: PeerId): ShapedLink | null {
    if (!this.uplink) return null
    let l = this.shaped.get(to)
    if (!l || l.closed) this.shaped.set(to, (l = this.uplink.link(to)))
    return l
  }

  /** @internal */
  countSent(to: PeerId, bytes: number): void {
    this.sent += bytes
    ;(this.perLink[to] ??= { bytesSent: 0, bytesReceived: 0 }).bytesSent += bytes
  }

  /** @internal Delivery from the network (also used by compliance tests to inject raw envelopes). */
  accept(env: Envelope, bytes = HEADER_BYTES): void {
    if (this.closed) return
    this.received += bytes
    ;(this.perLink[env.from] ??= { bytesSent: 0, bytesReceived: 0 }).bytesReceived += bytes
    // The clock is the sender's claim: the algorithm merges it once the message passed its own
    // checks (acceptClock), bounded.
    this.mailbox.deliver(env)
  }
}
