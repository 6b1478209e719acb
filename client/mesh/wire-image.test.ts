import { describe, expect, it } from 'vitest'
import { codecFor } from '../../shared/wire/codec'
import { WebRtcMesh, type MeshSignalingPort } from './webrtc-mesh'

/** A mesh with no links: wireImage needs only the room's compression. */
function meshWith(compression: 'fp32' | 'fp16' | 'int8') {
  const signaling: MeshSignalingPort = { on: () => () => {}, signal: () => {}, suspect: () => {}, membership: null }
  return new WebRtcMesh({ self: 'a', signaling, config: { compression, iceServers: [] }, errorFeedback: (k) => k.endsWith('/push') })
}

describe('WebRtcMesh.wireImage', () => {
  const x = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i) * (1 + (i % 7)))

  it.each(['fp16', 'int8'] as const)('%s: rounds in place to exactly what a receiver decodes', (compression) => {
    const mesh = meshWith(compression)
    const codec = codecFor(compression)
    const decoded = codec.decode(codec.encode(x), x.length)
    if (!decoded.ok) throw new Error(decoded.error)
    const v = new Float32Array(x)
    mesh.wireImage('ssgd/e1/ag0', v)
    expect(Array.from(v)).toEqual(Array.from(decoded.data))
    expect(Array.from(v)).not.toEqual(Array.from(x))
    mesh.close()
  })

  it('leaves fp32 payloads and error-feedback increments alone', () => {
    for (const [compression, kind] of [['fp32', 'ssgd/e1/ag0'], ['int8', 'od-sgd/push']] as const) {
      const mesh = meshWith(compression)
      const v = new Float32Array(x)
      mesh.wireImage(kind, v)
      expect(Array.from(v)).toEqual(Array.from(x))
      mesh.close()
    }
  })
})
