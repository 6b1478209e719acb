import type { Compute } from '../../shared/algorithms/types'
import { createNodeSession } from '../../client/node/node-platform'

/**
 * A misbehaving volunteer for the bad-peer e2e test: runs the real session and algorithm, but
 * every parameter vector it publishes is poisoned. Usage: tsx bad-peer.ts URL ROOM nan|shape
 */
const [server, room, mode] = process.argv.slice(2)

function poison(c: Compute): Compute {
  const bad = (p: Float32Array): Float32Array => {
    if (mode === 'shape') return p.subarray(0, Math.max(1, p.length - 7))
    const q = new Float32Array(p)
    for (let i = 0; i < q.length; i += 3) q[i] = NaN
    return q
  }
  return new Proxy(c, {
    get(target, prop, recv) {
      if (prop === 'readParams') return async () => bad(await target.readParams())
      // Its own model may stay sane; only what it shares is poisoned.
      if (prop === 'writeParams') return async (p: Float32Array) => target.writeParams(p.length === target.paramCount && p.every(Number.isFinite) ? p : await target.readParams())
      const v = Reflect.get(target, prop, recv)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

const session = createNodeSession({ server, room, name: `bad-${mode}`, backend: 'wasm', transformCompute: poison })
await session.start()
await session.finished()
process.exit(0)
