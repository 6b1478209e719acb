import { describe, expect, it } from 'vitest'
import { reportingWrtc, type DataChannelLike, type WrtcImpl } from './data-channel'

/** Just enough of an RTCPeerConnection to see what the reporting subclass adds. */
class FakePeerConnection extends EventTarget {
  constructor(readonly config?: RTCConfiguration) {
    super()
  }
  createDataChannel(label: string): { label: string } {
    return { label }
  }
}

const fake = { RTCPeerConnection: FakePeerConnection, RTCSessionDescription: class {}, RTCIceCandidate: class {} } as unknown as WrtcImpl

describe('reportingWrtc', () => {
  it('reports the channel the initiator creates and the one the answerer receives', () => {
    const seen: DataChannelLike[] = []
    const wrtc = reportingWrtc(fake, (ch) => seen.push(ch))!
    expect(wrtc.RTCSessionDescription).toBe(fake.RTCSessionDescription)
    expect(wrtc.RTCIceCandidate).toBe(fake.RTCIceCandidate)
    const pc = new wrtc.RTCPeerConnection({ iceServers: [] })
    expect(pc).toBeInstanceOf(FakePeerConnection)
    expect((pc as unknown as FakePeerConnection).config).toEqual({ iceServers: [] })
    const created = pc.createDataChannel('data')
    const received = { label: 'theirs' }
    pc.dispatchEvent(Object.assign(new Event('datachannel'), { channel: received }))
    expect(seen).toEqual([created, received])
  })

  it('leaves a platform without WebRTC (Node, no stack given) to simple-peer\'s own error', () => {
    expect(reportingWrtc(undefined, () => {})).toBeUndefined()
  })
})
