import type SimplePeer from 'simple-peer'

/** A WebRTC implementation for simple-peer's `wrtc` option (e.g. @roamhq/wrtc in Node). */
export type WrtcImpl = NonNullable<SimplePeer.Options['wrtc']>

/** The part of RTCDataChannel that sending with backpressure needs. */
export interface DataChannelLike {
  readonly bufferedAmount: number
  bufferedAmountLowThreshold: number
  readonly readyState: string
  send(d: Uint8Array): void
  addEventListener?(t: string, cb: () => void): void
  removeEventListener?(t: string, cb: () => void): void
}

/**
 * Why the link needs the RTCDataChannel itself: its backpressure reads `bufferedAmount` once
 * per high-water-mark's worth of frames (each read is a blocking call into libwebrtc in wrtc)
 * and waits for 'bufferedamountlow' at its own low-water mark. simple-peer's public API has
 * neither: `bufferSize` is a read per call with no drain event (a timer poll, throttled in
 * background tabs), and its stream `write()` drains at a fixed 64 KiB threshold, reading the
 * queue after every frame. Replacing simple-peer would mean redoing its offer/answer, candidate
 * and channel-closing handling (which node-webrtc.ts's shim is tuned to).
 *
 * So simple-peer stays the connection layer and the channel comes through its public `wrtc`
 * option: an RTCPeerConnection subclass that reports every data channel it creates (the
 * initiator's `createDataChannel`) or receives (the answerer's 'datachannel' event). simple-peer
 * uses one channel per connection and adopts the latest one it sees; so does the reporter.
 *
 * `base` undefined (a browser): the page's own RTCPeerConnection. Returns undefined where there
 * is none, so simple-peer raises its usual "no WebRTC support" error.
 */
export function reportingWrtc(
  base: WrtcImpl | undefined, onChannel: (ch: DataChannelLike) => void, onPeerConnection?: (pc: RTCPeerConnection) => void,
): WrtcImpl | undefined {
  const impl = base ?? browserWrtc()
  if (!impl) return undefined
  const Base = impl.RTCPeerConnection
  // DOM typings only take frames on a plain ArrayBuffer; ours always are (fresh copies), so the
  // channel is handed on as the narrower DataChannelLike.
  const report = (ch: RTCDataChannel) => onChannel(ch as unknown as DataChannelLike)
  class ReportingPeerConnection extends Base {
    constructor(config?: RTCConfiguration) {
      super(config)
      // The connection itself, for getStats() (client/mesh/connectivity.ts): simple-peer's own is private.
      onPeerConnection?.(this)
      this.addEventListener('datachannel', (e: RTCDataChannelEvent) => {
        if (e.channel) report(e.channel)
      })
    }
    override createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel {
      const ch = super.createDataChannel(label, init)
      // wrtc may return undefined here; simple-peer turns that into an error of its own.
      if (ch) report(ch)
      return ch
    }
  }
  return { RTCPeerConnection: ReportingPeerConnection, RTCSessionDescription: impl.RTCSessionDescription, RTCIceCandidate: impl.RTCIceCandidate }
}

function browserWrtc(): WrtcImpl | undefined {
  const g = globalThis as Partial<WrtcImpl>
  if (!g.RTCPeerConnection || !g.RTCSessionDescription || !g.RTCIceCandidate) return undefined
  return { RTCPeerConnection: g.RTCPeerConnection, RTCSessionDescription: g.RTCSessionDescription, RTCIceCandidate: g.RTCIceCandidate }
}
