import type { ChildProcess } from 'node:child_process'
import { Mailbox } from '../../../shared/mailbox'
import {
  DeadlineError, PeerUnavailableError, ProgressClock, deadline,
  type Envelope, type Membership, type Mesh, type MeshMessage, type MeshStats, type MessageFilter, type PeerId, type Unsubscribe,
} from '../../../shared/transport'
import type { MeshHarness } from '../../../shared/testing/mesh-compliance'
import type { ChildToParent, ParentToChild, PeerInit } from './mesh-peer-core'

/** How the test talks to one mesh test peer (mesh-peer-core.ts), wherever it runs. */
export interface PeerPort {
  post(m: ParentToChild): void
  onMessage(cb: (m: ChildToParent) => void): void
  /** Resolves when the peer is gone (process exited, page closed). */
  readonly exited: Promise<void>
  /** Abrupt end: SIGKILL the process / close the page. */
  kill(): void
  alive(): boolean
}

/** A peer in a separate Node process (`fork`ed with serialization 'advanced'). */
export function childProcessPort(child: ChildProcess): PeerPort {
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  return {
    post: (m) => {
      if (child.connected) child.send(m)
    },
    onMessage: (cb) => void child.on('message', (m: ChildToParent) => cb(m)),
    exited,
    kill: () => void child.kill('SIGKILL'),
    alive: () => child.exitCode === null && child.signalCode === null,
  }
}

/**
 * The Mesh interface of a remote test peer: send/want/… go to the peer; every envelope its
 * WebRtcMesh delivered (after the mesh's own validation, duplicate and stale-epoch dropping)
 * comes back and lands in a local Mailbox — the same class the mesh itself uses — so receive()
 * and discard() behave as the peer's own would.
 */
export class RemoteMesh implements Mesh {
  self: PeerId = ''
  readonly clock = new ProgressClock()
  readonly mailbox = new Mailbox()
  readonly logs: { event: string; detail?: Record<string, unknown> }[] = []
  private m: Membership = { epoch: 0, peers: [], roles: { ps: null } }
  private listeners = new Set<(m: Membership) => void>()
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private seq = 0
  readonly exited: Promise<void>
  readonly ready: Promise<void>

  constructor(readonly port: PeerPort, init: PeerInit) {
    this.exited = port.exited
    this.ready = new Promise((resolve, reject) => {
      void port.exited.then(() => reject(new Error(`peer exited early: ${JSON.stringify(this.logs.slice(-3))}`)))
      port.onMessage((msg) => {
        if (msg.ev === 'ready') {
          this.self = msg.self
          resolve()
        } else this.onChild(msg)
      })
    })
    port.post({ op: 'init', init })
  }

  private onChild(msg: ChildToParent): void {
    switch (msg.ev) {
      case 'membership':
        if (msg.m.epoch < this.m.epoch) return
        this.m = msg.m
        this.mailbox.setMinEpoch(msg.m.epoch)
        for (const cb of [...this.listeners]) cb(msg.m)
        return
      case 'envelope':
        // Like the WebRTC mesh: the clock is merged by whoever accepts the message (acceptClock).
        this.mailbox.deliver(msg.e)
        return
      case 'log':
        this.logs.push({ event: msg.event, detail: msg.detail })
        return
      case 'result': {
        const p = this.pending.get(msg.id)
        this.pending.delete(msg.id)
        if (!p) return
        if (msg.ok) return p.resolve(msg.value)
        const e = msg.error
        const err = e.name === 'DeadlineError' ? new DeadlineError(e.deadline ?? 'remote')
          : e.name === 'PeerUnavailableError' ? new PeerUnavailableError('?', e.message)
          : new Error(e.message)
        return p.reject(err)
      }
    }
  }

  private call<T>(make: (id: number) => ParentToChild, signal?: AbortSignal): Promise<T> {
    const id = ++this.seq
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id)
        this.port.post({ op: 'abort', id })
        reject(signal!.reason)
      }
      if (signal?.aborted) return onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, {
        resolve: (v) => { signal?.removeEventListener('abort', onAbort); resolve(v as T) },
        reject: (e) => { signal?.removeEventListener('abort', onAbort); reject(e) },
      })
      this.port.post(make(id))
    })
  }

  membership(): Membership { return this.m }
  onMembership(cb: (m: Membership) => void): Unsubscribe {
    this.listeners.add(cb)
    return () => this.listeners.delete(cb)
  }
  send(to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void> {
    return this.call((id) => ({ op: 'send', id, to, msg, clock: this.clock.value }), signal)
  }
  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope> { return this.mailbox.receive(filter, signal) }
  discard(filter: MessageFilter): number { return this.mailbox.discard(filter) }
  want(peers: readonly PeerId[]): void { this.port.post({ op: 'want', peers: [...peers] }) }
  reportSuspect(peer: PeerId, reason: string): void { this.port.post({ op: 'suspect', peer, reason }) }
  stats(): MeshStats { throw new Error('use remoteStats()') }
  remoteStats(): Promise<MeshStats & { links: PeerId[]; connected: PeerId[]; peakBufferedAmount: number; highWaterMark: number; framesSent: number; bufferedReads: number }> { return this.call((id) => ({ op: 'stats', id })) }
  raw(to: PeerId, bytes: number): Promise<{ bytes: number; ms: number; bytesPerSec: number }> {
    return this.call((id) => ({ op: 'raw', id, to, bytes }))
  }
  garbage(to: PeerId, frames: Uint8Array[]): Promise<void> { return this.call((id) => ({ op: 'garbage', id, to, frames })) }
  inject(e: Envelope): void { this.port.post({ op: 'inject', e }) }
  async shutdown(): Promise<void> {
    if (this.port.alive()) this.port.kill()
    await this.exited
  }
}

/** Polls `pred` every 20 ms until it holds, under the named deadline `what`. */
export async function pollUntil(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const sig = deadline(what, ms)
  while (!pred()) {
    if (sig.aborted) throw sig.reason
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The compliance suite's view of remote peers: leaving is an abrupt kill (a tab closing). */
export function remoteHarness(peers: RemoteMesh[]): MeshHarness {
  return {
    meshes: peers,
    leave: async (i) => { await peers[i].shutdown() },
    close: async () => { await Promise.all(peers.map((p) => p.shutdown())) },
    inject: (i, e) => peers[i].inject(e),
  }
}
