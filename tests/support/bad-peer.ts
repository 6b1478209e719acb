import type { SessionMesh } from '../../client/session/swarm-session'
import { sprayGarbage } from '../../client/mesh/testing/probes'
import type { WebRtcMesh } from '../../client/mesh/webrtc-mesh'
import { createNodeSession } from '../../client/node/node-platform'

/**
 * A misbehaving volunteer for the bad-peer e2e tests: it runs the real session, algorithm and
 * model, but poisons what it *sends*. Its own model stays sane, so it keeps training and keeps
 * sending — the tests are about what its neighbours do with the poison, not about it crashing.
 *  - nan:      NaN in every third entry of each parameter vector
 *  - shape:    each vector 7 values short
 *  - oversize: each vector 4× as long (over the room's maxMessageBytes: refused on the first frame)
 *  - garbage:  random bytes written straight onto its data channels every 200 ms, below framing
 * Usage: node --import tsx bad-peer.ts URL ROOM nan|shape|oversize|garbage
 */
const MODES = ['nan', 'shape', 'oversize', 'garbage'] as const
type Mode = (typeof MODES)[number]
const [server, room, modeArg] = process.argv.slice(2)
if (!server || !room || !(MODES as readonly string[]).includes(modeArg)) {
  console.error(`usage: bad-peer.ts URL ROOM ${MODES.join('|')}`)
  process.exit(2)
}
const mode = modeArg as Mode

function poison(data: Float32Array): Float32Array {
  if (mode === 'shape') return data.slice(0, Math.max(1, data.length - 7))
  if (mode === 'oversize') {
    const big = new Float32Array(data.length * 4)
    for (let k = 0; k < 4; k++) big.set(data, k * data.length)
    return big
  }
  const q = new Float32Array(data)
  for (let i = 0; i < q.length; i += 3) q[i] = NaN
  return q
}

function poisonOutgoing(mesh: SessionMesh): SessionMesh {
  if (mode === 'garbage') return mesh
  return new Proxy(mesh, {
    get(target, prop, recv) {
      if (prop === 'send') {
        return (to: string, msg: Parameters<SessionMesh['send']>[1], signal?: AbortSignal) =>
          target.send(to, msg.data ? { ...msg, data: poison(msg.data) } : msg, signal)
      }
      const v = Reflect.get(target, prop, recv)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

function garbageOnLinks(mesh: WebRtcMesh): void {
  if (mode === 'garbage') sprayGarbage(mesh.testPort(), 200)
}

const session = createNodeSession({
  server, room, name: `bad-${mode}`, backend: 'wasm', transformMesh: poisonOutgoing, tapWebRtcMesh: garbageOnLinks,
})
await session.start()
await session.finished()
process.exit(0)
