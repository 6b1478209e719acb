import { yieldToEventLoop } from '../transport'
import { ATC } from './dmsgd'
import { gossipAlgorithm, type GossipRule } from './gossip-kernel'
import type { AlgorithmFactory } from './types'

/**
 * D-PSGD (Lian et al., NeurIPS 2017): one exchange with the topology neighbours per step,
 * MH / exponential weights from the current roster, missing neighbours folded onto self
 * (gossip-kernel.ts). Two orders (config.order):
 *   awc (default): x ← Σ w x_j − γ m,        m = βm + g + λx   (g at the un-mixed x)
 *   atc:           x ← Σ w (x_j − γ m_j),    m = βm + g + λx   (DmSGD's form, dmsgd.ts)
 * With `robust: 'on'` the mix Σ w x_j is ClippedGossip (peer.mix; see
 * docs/algorithms.md "Robust aggregation"): AWC clips x_j − x of the models before the step, ATC
 * those of the stepped models (the form of He, Karimireddy & Jaggi 2022, who clip after the
 * local step).
 */

/**
 * Average-while-compute: communication of x^k overlaps the gradient at x^k (Lian et al.), as
 * both only read x^k.
 */
export const AWC: GossipRule = {
  vectors: 1,
  make(peer) {
    const { arena, x, m } = peer
    const mixed = arena.alloc()
    return async () => {
      const { lr, beta, wd, nb, w } = await peer.begin()
      // Send a snapshot: x is updated in place below, possibly while a send to a neighbour that is
      // still connecting has not been encoded yet.
      const pending = peer.ex.exchange(peer.kind, peer.step, x.slice(), nb)
      // mesh.send encodes and writes to the data channel a few microtasks later; on the wasm and
      // cpu backends compute.gradient() runs its kernels synchronously, so without this yield the
      // model would only leave after the gradient is done (no overlap at all).
      await yieldToEventLoop()
      const gr = await peer.ctx.compute.gradient()
      const res = await pending
      const info = peer.mix(mixed, x, w, res)
      // m = βm + g + λx ; x = mixed − γm
      arena.momentum(x, m, gr.grad, beta, lr, wd, mixed)
      return peer.finish(res, info, gr.loss, gr.samples, lr)
    }
  },
}

export const dpsgd: AlgorithmFactory = gossipAlgorithm('dpsgd', (ctx) => (ctx.config.order === 'atc' ? ATC : AWC))

/** Re-exported for tests; lives in shared/transport.ts. */
export { yieldToEventLoop }
