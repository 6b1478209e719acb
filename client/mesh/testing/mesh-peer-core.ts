/**
 * One test peer's WebRtcMesh, driven by messages from a test process: the WebRTC mesh tests run
 * the same peer in a separate Node process (mesh-peer-process.ts, over IPC) and in a headless
 * Chromium page (mesh-peer-page.ts, over Playwright), so the compliance suite checks both the
 * Node stacks and the browser's own WebRTC with one piece of code. The peer joins the room
 * through the real signaling server, forwards every delivered envelope and membership to the test
 * (whose RemoteMesh runs receive()/discard() on the same Mailbox class), and executes the test's
 * send/want/… requests.
 */
import type { Compression } from '../../../shared/config'
import type { LinkProfileName } from '../../../shared/link-conditions'
import { DeadlineError, deadline, type Envelope, type MeshMessage } from '../../../shared/transport'
import type { NodeWebRtcOptions } from '../node-webrtc'
import { SignalingClient } from '../signaling-client'
import { WebRtcMesh, type WebRtcMeshOptions, type WrtcImpl } from '../webrtc-mesh'
import { ThroughputProbe, writeRawFrames } from './probes'

export interface PeerInit {
  url: string
  room: string
  schemaHash?: string
  compression?: Compression
  maxMessageBytes?: number
  connectTimeoutMs?: number
  warmLinks?: number
  /** Emulated link conditions (shared/link-conditions.ts); default none. */
  link?: LinkProfileName
  /** Node WebRTC stack for this peer (default @roamhq/wrtc); ignored in a browser. */
  webrtc?: NodeWebRtcOptions
}

export type ParentToChild =
  | { op: 'init'; init: PeerInit }
  | { op: 'send'; id: number; to: string; msg: MeshMessage; clock: number }
  | { op: 'abort'; id: number }
  | { op: 'want'; peers: string[] }
  | { op: 'suspect'; peer: string; reason: string }
  | { op: 'inject'; e: Envelope }
  | { op: 'stats'; id: number }
  | { op: 'raw'; id: number; to: string; bytes: number }
  | { op: 'garbage'; id: number; to: string; frames: Uint8Array[] }
  | { op: 'close'; id: number }

export type ChildToParent =
  | { ev: 'ready'; self: string }
  | { ev: 'membership'; m: { epoch: number; peers: string[]; roles: { ps: string | null } } }
  | { ev: 'envelope'; e: Envelope }
  | { ev: 'result'; id: number; ok: true; value?: unknown }
  | { ev: 'result'; id: number; ok: false; error: { name: string; message: string; deadline?: string } }
  | { ev: 'log'; event: string; detail?: Record<string, unknown> }

export interface MeshPeerEnv {
  agent: 'node' | 'browser'
  post(m: ChildToParent): void
  /** The WebRTC implementation for simple-peer: a Node stack, or undefined in a browser. */
  loadWrtc(init: PeerInit): Promise<WrtcImpl | undefined>
  /** Init failed: the peer cannot do anything useful any more. */
  fatal(): void
}

function errOf(e: unknown): { name: string; message: string; deadline?: string } {
  const x = e as { name?: string; message?: string; deadline?: string }
  return { name: x?.name ?? 'Error', message: x?.message ?? String(e), ...(x?.deadline ? { deadline: x.deadline } : {}) }
}

function meshOptions(p: PeerInit, self: string, signaling: SignalingClient, wrtc: WrtcImpl | undefined, post: MeshPeerEnv['post']): WebRtcMeshOptions {
  return {
    self,
    signaling,
    ...(wrtc ? { wrtc } : {}),
    schemaHash: p.schemaHash ?? 'test-schema',
    config: {
      iceServers: [],
      ...(p.compression ? { compression: p.compression } : {}),
      ...(p.maxMessageBytes ? { maxMessageBytes: p.maxMessageBytes } : {}),
      ...(p.link ? { link: p.link } : {}),
    },
    ...(p.connectTimeoutMs ? { connectTimeoutMs: p.connectTimeoutMs } : {}),
    ...(p.warmLinks !== undefined ? { warmLinks: p.warmLinks } : {}),
    log: (event, detail) => {
      if (event !== 'mesh.hello') post({ ev: 'log', event, detail })
    },
  }
}

/** A joined peer: its mesh, the probe that answers and runs throughput measurements, its signaling. */
interface Joined {
  mesh: WebRtcMesh
  probe: ThroughputProbe
  sig: SignalingClient
}

type Reply = (id: number, fn: () => Promise<unknown>) => Promise<void>
type PeerOp = Exclude<ParentToChild, { op: 'init' | 'abort' }>

/** One request from the test to a joined peer. */
async function runOp(msg: PeerOp, { mesh: m, probe, sig }: Joined, aborts: Map<number, AbortController>, reply: Reply): Promise<void> {
  switch (msg.op) {
    case 'send': {
      const ctl = new AbortController()
      aborts.set(msg.id, ctl)
      // The test driver's own progress: trusted, as the peer's own steps would be.
      m.clock.advance(msg.clock)
      await reply(msg.id, () => m.send(msg.to, msg.msg, ctl.signal))
      aborts.delete(msg.id)
      return
    }
    case 'want':
      return m.want(msg.peers)
    case 'suspect':
      return m.reportSuspect(msg.peer, msg.reason)
    case 'inject':
      // The mesh's own Mailbox (stale-epoch and duplicate dropping).
      m.testPort().deliver(msg.e)
      return
    case 'stats':
      return reply(msg.id, async () => ({ ...m.stats(), ...m.testPort().diagnostics() }))
    case 'raw':
      return reply(msg.id, () => probe.measure(msg.to, msg.bytes))
    case 'garbage':
      // A misbehaving peer: writes arbitrary bytes straight onto the data channel.
      return reply(msg.id, async () => {
        await m.send(msg.to, { kind: 't/warmup', round: -1 })
        await writeRawFrames(m.testPort(), msg.to, msg.frames)
      })
    case 'close':
      return reply(msg.id, async () => {
        probe.close()
        await m.close()
        sig.close()
      })
  }
}

/** Returns the peer's message handler (it never throws: failures go back as results or logs). */
export function createMeshPeer(env: MeshPeerEnv): (msg: ParentToChild) => Promise<void> {
  const { post } = env
  const aborts = new Map<number, AbortController>()
  let joined: Joined | null = null

  async function init(p: PeerInit): Promise<void> {
    // Loaded before joining, so a stack that fails to load fails 'ready' rather than a later send.
    const wrtc = await env.loadWrtc(p)
    const sig = new SignalingClient(p.url, { socket: { transports: ['websocket'] }, room: p.room })
    const { self } = await sig.join({ room: p.room, role: 'volunteer', agent: env.agent }, deadline('peer.join', 10_000))
    await sig.enterRoster(deadline('peer.ready', 10_000))
    const mesh = new WebRtcMesh(meshOptions(p, self, sig, wrtc, post))
    // Every peer answers throughput runs, so any of them can be asked to measure.
    joined = { mesh, probe: new ThroughputProbe(mesh.testPort()), sig }
    mesh.onMembership((m) => post({ ev: 'membership', m: { epoch: m.epoch, peers: [...m.peers], roles: { ...m.roles } } }))
    const m = mesh.membership()
    post({ ev: 'membership', m: { epoch: m.epoch, peers: [...m.peers], roles: { ...m.roles } } })
    post({ ev: 'ready', self })
    // Forward everything delivered; the parent's Mailbox does the filtering for receive().
    const forever = new AbortController().signal
    for (;;) {
      const e = await mesh.receive({}, forever)
      post({ ev: 'envelope', e })
    }
  }

  const reply: Reply = async (id, fn) => {
    try {
      post({ ev: 'result', id, ok: true, value: await fn() })
    } catch (e) {
      post({ ev: 'result', id, ok: false, error: errOf(e) })
    }
  }

  async function handle(msg: ParentToChild): Promise<void> {
    if (msg.op === 'init') {
      init(msg.init).catch((e) => {
        post({ ev: 'log', event: 'peer.init-failed', detail: errOf(e) })
        env.fatal()
      })
      return
    }
    if (msg.op === 'abort') return void aborts.get(msg.id)?.abort(new DeadlineError('parent-abort'))
    if (joined) await runOp(msg, joined, aborts, reply)
  }

  return (msg) => handle(msg).catch((e) => post({ ev: 'log', event: 'peer.handler-error', detail: errOf(e) }))
}
