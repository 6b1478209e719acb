import type { MembershipAnnouncement } from '../../shared/protocol/signaling'
import type { ShapedLink } from '../../shared/link-conditions'
import { PeerUnavailableError, type Membership, type PeerId } from '../../shared/transport'
import type { TrafficCounters } from './frame-sender'
import { Link, type LinkOptions } from './link'

/** How often the answering side repeats a connect request while no link exists. */
const CONNECT_REQUEST_INTERVAL_MS = 2_000
/** Delay before re-dialling a wanted peer whose link dropped. */
const RECONNECT_DELAY_MS = 500
const CONNECT_SIGNAL = 'connect'

/** What the pool tells the mesh about its links. */
export interface LinkPoolHooks {
  created(link: Link): void
  opened(link: Link): void
  message(link: Link, bytes: Uint8Array | null): void
  closed(link: Link): void
}

export interface LinkPoolOptions {
  self: PeerId
  signal(to: PeerId, data: Record<string, unknown>): void
  /** Topology neighbours for a membership (pure function from shared/topology). */
  neighbours?: (m: Membership, self: PeerId) => readonly PeerId[]
  /** Links kept open beyond the wanted ones (LRU). */
  warmLinks: number
  /** Settings every new link gets (ICE servers are read when it is created). */
  link: Pick<LinkOptions, 'wrtc' | 'connectTimeoutMs' | 'highWaterMark' | 'lowWaterMark'>
  /**
   * Read for each new link, so renewed TURN credentials reach the links made after them; a
   * link already up keeps the allocation it made with the old ones (TURN refreshes it itself).
   */
  ice: () => { iceServers: RTCIceServer[]; iceTransportPolicy: RTCIceTransportPolicy }
  counters: TrafficCounters
  /** Emulated link conditions for a new link to `peer` (null: none); read as each link is made. */
  shaped?: (peer: PeerId) => ShapedLink | null
  hooks: LinkPoolHooks
  log: (event: string, detail?: Record<string, unknown>) => void
  safely: (where: string, fn: () => void) => void
}

/**
 * The links the membership and the algorithm call for:
 * - kept to the peers the algorithm `want()`s plus the topology `neighbours`; others stay open
 *   in a small LRU pool (time-varying graphs reuse them) up to `warmLinks`;
 * - glare: the peer with the lower id is always the initiator; the other side asks for a link
 *   with a `{tabswarm:'connect'}` signal instead of offering;
 * - a wanted peer whose link broke (it did not leave or say bye) is re-dialled.
 */
export class LinkPool {
  private readonly links = new Map<PeerId, Link>()
  private current: Membership
  private wanted: readonly PeerId[] = []
  private readonly reconnectTimers = new Set<ReturnType<typeof setTimeout>>()
  private closed = false

  constructor(private readonly o: LinkPoolOptions) {
    this.current = { epoch: 0, peers: [o.self], roles: { ps: null } }
  }

  membership(): Membership {
    return this.current
  }

  /**
   * Adopts an announced membership unless it is stale (an older epoch, or the current one
   * again), closes links to peers that left and opens the newly wanted ones.
   */
  adopt(a: MembershipAnnouncement): Membership | null {
    if (a.epoch < this.current.epoch || (a.epoch === this.current.epoch && this.current.epoch !== 0)) return null
    const m: Membership = { epoch: a.epoch, peers: [...a.peers], roles: { ps: a.roles.ps } }
    this.current = m
    for (const [peer, link] of this.links) if (!m.peers.includes(peer)) this.drop(link, 'peer left the room')
    this.reconcile()
    return m
  }

  want(peers: readonly PeerId[]): void {
    this.wanted = [...peers]
    this.reconcile()
  }

  /** The link to a peer in the room, opened if needed. */
  linkTo(peer: PeerId): Link {
    if (!this.current.peers.includes(peer)) throw new PeerUnavailableError(peer, 'not in room')
    return this.ensure(peer)
  }

  /** The current link to `peer`, if there is one. */
  existing(peer: PeerId): Link | undefined {
    const l = this.links.get(peer)
    return l && !l.closed ? l : undefined
  }

  peers(): PeerId[] {
    return [...this.links.keys()]
  }

  connected(): Link[] {
    return [...this.links.values()].filter((l) => l.connected && !l.closed)
  }

  private desired(): Set<PeerId> {
    const out = new Set<PeerId>()
    const inRoom = new Set(this.current.peers)
    const add = (p: PeerId) => {
      if (p !== this.o.self && inRoom.has(p)) out.add(p)
    }
    this.wanted.forEach(add)
    this.o.neighbours?.(this.current, this.o.self).forEach(add)
    return out
  }

  /** Opens links to wanted peers and trims unwanted ones to the warm pool (LRU). */
  private reconcile(): void {
    if (this.closed) return
    const want = this.desired()
    for (const p of want) this.ensure(p)
    const spare = [...this.links.values()].filter((l) => !want.has(l.peer)).sort((a, b) => a.lastUsed - b.lastUsed)
    while (spare.length > this.o.warmLinks) this.drop(spare.shift()!, 'evicted from warm pool', true)
  }

  private ensure(peer: PeerId): Link {
    const existing = this.links.get(peer)
    if (existing && !existing.closed) {
      if (!existing.connected && !existing.initiator) this.requestConnect(existing)
      return existing
    }
    const link = this.create(peer, this.o.self < peer)
    if (!link.initiator) this.requestConnect(link)
    return link
  }

  private requestConnect(link: Link): void {
    const now = Date.now()
    if (link.gotOffer || now - link.lastConnectRequest < CONNECT_REQUEST_INTERVAL_MS) return
    link.lastConnectRequest = now
    this.o.safely('connect-request', () => this.o.signal(link.peer, { tabswarm: CONNECT_SIGNAL }))
  }

  private create(peer: PeerId, initiator: boolean): Link {
    const { hooks } = this.o
    const link: Link = new Link({
      ...this.o.link,
      peer,
      initiator,
      ...this.o.ice(),
      counters: this.o.counters,
      shaped: this.o.shaped?.(peer) ?? null,
      safely: this.o.safely,
      events: {
        signal: (data) => this.o.signal(peer, data),
        open: () => {
          this.o.log('mesh.link-open', { peer })
          hooks.opened(link)
        },
        message: (bytes) => hooks.message(link, bytes),
        down: (reason) => this.drop(link, reason),
      },
    })
    hooks.created(link)
    this.links.set(peer, link)
    return link
  }

  /** Closes `link` and, if its peer is still wanted and did not say bye, re-dials it shortly. */
  drop(link: Link, reason: string, quiet = false): void {
    if (!link.close(reason)) return
    this.o.hooks.closed(link)
    if (this.links.get(link.peer) === link) this.links.delete(link.peer)
    if (!quiet) this.o.log('mesh.link-closed', { peer: link.peer, reason })
    if (this.closed || link.byeReceived || !this.desired().has(link.peer)) return
    const t = setTimeout(() => {
      this.reconnectTimers.delete(t)
      if (!this.closed && this.desired().has(link.peer) && !this.links.has(link.peer)) this.ensure(link.peer)
    }, RECONNECT_DELAY_MS)
    this.reconnectTimers.add(t)
  }

  /** Signaling from `from`: connect requests, and offers/answers/candidates for its link. */
  onSignal(from: PeerId, data: Record<string, unknown>): void {
    if (this.closed || from === this.o.self || !this.current.peers.includes(from)) return
    const weInitiate = this.o.self < from
    if (data.tabswarm === CONNECT_SIGNAL) {
      if (weInitiate) this.ensure(from)
      return
    }
    let link = this.links.get(from)
    if (weInitiate) {
      // Only answers and candidates are valid from a higher id; an offer would be glare.
      if (!link || data.type === 'offer') return
    } else if (data.type === 'offer') {
      if (link && link.gotOffer) {
        // The initiator restarted this link: replace ours.
        this.drop(link, 'replaced by a new offer', true)
        link = undefined
      }
      link ??= this.create(from, false)
      link.gotOffer = true
    } else if (!link) return
    try {
      link.signal(data)
    } catch (e) {
      this.drop(link, `bad signal: ${String(e)}`)
    }
  }

  /** Closes every link; nothing is re-dialled afterwards. */
  close(): void {
    this.closed = true
    for (const t of this.reconnectTimers) clearTimeout(t)
    for (const l of [...this.links.values()]) this.drop(l, 'mesh closed', true)
  }
}
