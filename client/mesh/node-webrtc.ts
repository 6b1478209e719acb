import type { WrtcImpl } from './data-channel'

/**
 * The WebRTC implementation a Node peer hands to simple-peer (`wrtc` option of WebRtcMesh).
 * Browsers never use this: they have WebRTC built in.
 *
 * Two stacks, both prebuilt binaries from the npm registry (no download or build step):
 *  - 'wrtc' (default): @roamhq/wrtc, Chromium's libwebrtc. No option to bind an address, so it
 *    uses every interface: keep tests inside the loopback-only namespace (tools/netns-run.sh).
 *  - 'node-datachannel': libdatachannel's W3C polyfill (`node-datachannel/polyfill`), lighter and
 *    faster on Node ↔ Node links, wrapped in the small shim below.
 *    `bindAddress` pins its ICE sockets to one address (e.g. 127.0.0.1 in tests).
 *
 * Each stack is imported lazily, on first use, so a stack whose native binary fails to load on
 * some platform never breaks a peer that asked for the other one.
 */
export const NODE_WEBRTC_STACKS = ['wrtc', 'node-datachannel'] as const
export type NodeWebRtcStack = (typeof NODE_WEBRTC_STACKS)[number]

export interface NodeWebRtcOptions {
  /** Default 'wrtc' (@roamhq/wrtc). */
  stack?: NodeWebRtcStack
  /**
   * node-datachannel only: the local address ICE binds to (e.g. '127.0.0.1' keeps test traffic
   * on loopback even outside a network namespace). Unset = all interfaces, which is what a
   * volunteer on a LAN needs, so never default it. Inside a loopback-only namespace
   * node-datachannel gathers no candidates at all unless bound to 127.0.0.1.
   * @roamhq/wrtc has no such option: asking for one with it is an error.
   */
  bindAddress?: string
}

export function isNodeWebRtcStack(s: unknown): s is NodeWebRtcStack {
  return (NODE_WEBRTC_STACKS as readonly unknown[]).includes(s)
}

const cache = new Map<string, Promise<WrtcImpl>>()

/** Loads (once per stack and bind address) the `wrtc` object for simple-peer. */
export function loadNodeWebRtc(opts: NodeWebRtcStack | NodeWebRtcOptions = {}): Promise<WrtcImpl> {
  const o: NodeWebRtcOptions = typeof opts === 'string' ? { stack: opts } : opts
  const stack = o.stack ?? 'wrtc'
  if (!isNodeWebRtcStack(stack)) return Promise.reject(new Error(`unknown WebRTC stack '${String(stack)}' (use ${NODE_WEBRTC_STACKS.join(' or ')})`))
  if (stack === 'wrtc' && o.bindAddress) {
    return Promise.reject(new Error('bindAddress needs the node-datachannel stack: @roamhq/wrtc cannot bind an address'))
  }
  const key = `${stack}|${o.bindAddress ?? ''}`
  let p = cache.get(key)
  if (!p) {
    p = stack === 'wrtc' ? loadWrtc() : loadNodeDataChannel(o.bindAddress)
    p.catch(() => cache.delete(key)) // let a later call retry
    cache.set(key, p)
  }
  return p
}

async function loadWrtc(): Promise<WrtcImpl> {
  const mod = await import('@roamhq/wrtc')
  // CJS module: the implementation is the default export under ESM interop.
  return ((mod as { default?: unknown }).default ?? mod) as WrtcImpl
}

/**
 * node-datachannel's polyfill, with the shim simple-peer needs on top of it:
 *  - simple-peer rewrites `offer.sdp` / `answer.sdp` in place (trickle filtering, sdpTransform)
 *    but the polyfill returns RTCSessionDescription objects whose `sdp` is a getter only, so the
 *    assignment throws. Return plain `{ type, sdp }` objects, as RTCSessionDescriptionInit allows.
 *  - Candidate timing. libdatachannel negotiates and gathers as soon as a data channel exists,
 *    so the polyfill fires 'icecandidate' before simple-peer has even asked for the offer, and
 *    its localDescription (which simple-peer signals) already embeds the candidates. Two races
 *    followed (measured between two processes on loopback):
 *      1. candidates signaled ahead of the offer: a WebRtcMesh answerer creates its link only
 *         when the offer arrives and drops what comes before, so ICE fell back to
 *         peer-reflexive discovery (~1 s instead of a few ms, now and then a connect timeout);
 *      2. an answerer that knows the offerer's candidates connects ICE and starts DTLS at once,
 *         before the offerer has the answer (so no DTLS role or fingerprint): the offerer's
 *         transport fails ("Got a remote candidate without ICE transport" when the answer
 *         arrives). About one link in six failed this way; none in 50 runs with the shim.
 *    So candidates are held back and the signaled descriptions carry none (trickle only, as
 *    WebRtcMesh always uses): the answerer releases its own once its answer is set, the offerer
 *    only once the answer is applied. Release waits one macrotask, because simple-peer signals
 *    the description in a promise callback after setLocalDescription resolves and the
 *    candidates must follow it, not overtake it.
 *  - The config simple-peer passes comes from the room (iceServers); bindAddress is ours, merged
 *    in here because simple-peer and WebRtcMesh know nothing about it. The polyfill also
 *    normalises (mutates) the iceServers it is given, so hand it copies, never the room config.
 */
async function loadNodeDataChannel(bindAddress: string | undefined): Promise<WrtcImpl> {
  const poly = await import('node-datachannel/polyfill')
  const Base = poly.RTCPeerConnection

  class ShimmedRTCPeerConnection extends Base {
    // `declare`: no field initialisers, which would run after super() and could wipe candidates
    // held during construction. heldCandidates: undefined/array = holding, null = released.
    declare private heldCandidates: Event[] | null | undefined
    declare private releaseScheduled: boolean | undefined

    constructor(config?: RTCConfiguration) {
      super({
        ...config,
        iceServers: (config?.iceServers ?? []).map((s) => ({ ...s })),
        ...(bindAddress ? { bindAddress } : {}),
      } as ConstructorParameters<typeof Base>[0])
    }
    override async createOffer(): Promise<RTCSessionDescriptionInit> {
      const d = (await super.createOffer()) as RTCSessionDescriptionInit
      return { type: d.type, sdp: withoutCandidates(d.sdp) }
    }
    override async createAnswer(): Promise<RTCSessionDescriptionInit> {
      const d = (await super.createAnswer()) as RTCSessionDescriptionInit
      return { type: d.type, sdp: withoutCandidates(d.sdp) }
    }
    override get localDescription(): RTCSessionDescription {
      const d = super.localDescription
      if (this.heldCandidates === null || !d?.type) return d
      return { type: d.type, sdp: withoutCandidates(d.sdp), toJSON: () => ({ type: d.type, sdp: withoutCandidates(d.sdp) }) } as RTCSessionDescription
    }
    override dispatchEvent(event: Event): boolean {
      if (event.type === 'icecandidate' && this.heldCandidates !== null) {
        ;(this.heldCandidates ??= []).push(event)
        return true
      }
      return super.dispatchEvent(event)
    }
    override async setLocalDescription(description: RTCSessionDescriptionInit): Promise<void> {
      await super.setLocalDescription(description)
      if (description?.type === 'answer') this.releaseCandidates()
    }
    override async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      await super.setRemoteDescription(description)
      if (description?.type === 'answer') this.releaseCandidates()
    }
    private releaseCandidates(): void {
      if (this.releaseScheduled) return
      this.releaseScheduled = true
      setImmediate(() => {
        const held = this.heldCandidates ?? []
        this.heldCandidates = null
        for (const e of held) super.dispatchEvent(e)
      })
    }
  }

  return {
    RTCPeerConnection: ShimmedRTCPeerConnection,
    RTCSessionDescription: poly.RTCSessionDescription,
    RTCIceCandidate: poly.RTCIceCandidate,
  } as unknown as WrtcImpl
}

/** An SDP without its candidate lines (they are trickled separately). */
function withoutCandidates(sdp: string | undefined): string | undefined {
  return sdp?.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n')
}
