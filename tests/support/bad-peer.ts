import type { SessionMesh } from '../../client/session/swarm-session'
import { createNodeSession } from '../../client/node/node-platform'

/**
 * A misbehaving volunteer for the bad-peer e2e test: it runs the real session, algorithm and
 * model, but every parameter vector it *sends* is poisoned on the way out (NaN entries, or 7
 * values short). Its own model stays sane, so it keeps training and keeps sending — the test is
 * about what its neighbours do with the poison, not about it crashing itself.
 * Usage: node --import tsx bad-peer.ts URL ROOM nan|shape
 */
const [server, room, mode] = process.argv.slice(2)
if (!server || !room || (mode !== 'nan' && mode !== 'shape')) {
  console.error('usage: bad-peer.ts URL ROOM nan|shape')
  process.exit(2)
}

function poison(data: Float32Array): Float32Array {
  if (mode === 'shape') return data.slice(0, Math.max(1, data.length - 7))
  const q = new Float32Array(data)
  for (let i = 0; i < q.length; i += 3) q[i] = NaN
  return q
}

function poisonOutgoing(mesh: SessionMesh): SessionMesh {
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

const session = createNodeSession({ server, room, name: `bad-${mode}`, backend: 'wasm', transformMesh: poisonOutgoing })
await session.start()
await session.finished()
process.exit(0)
