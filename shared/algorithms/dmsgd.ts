import { gossipAlgorithm, type GossipRule } from './gossip-kernel'
import type { AlgorithmFactory } from './types'

/**
 * DmSGD, the decentralized momentum SGD baseline of Yuan et al. (DecentLaM, ICCV 2021):
 * local heavy-ball, then gossip of the stepped model (adapt-then-combine):
 *   m = βm + g + λx,   x ← Σ w (x_j − γ m_j)
 * D-PSGD's `order: 'atc'` is this update too (dpsgd.ts).
 */
export const ATC: GossipRule = {
  vectors: 2,
  make(peer) {
    const { arena, x, m } = peer
    const mixed = arena.alloc()
    const half = arena.alloc()
    return async () => {
      const { lr, beta, wd, nb, w } = await peer.begin()
      const gr = await peer.ctx.compute.gradient()
      // m = βm + g + λx ; half = x − γm
      half.set(x)
      arena.momentum(half, m, gr.grad, beta, lr, wd)
      // The payload is a copy: `half` is overwritten next step, maybe before a send is encoded.
      const res = await peer.ex.exchange(peer.kind, peer.step, half.slice(), nb)
      const info = peer.mix(mixed, half, w, res)
      x.set(mixed)
      return peer.finish(res, info, gr.loss, gr.samples, lr)
    }
  },
}

export const dmsgd: AlgorithmFactory = gossipAlgorithm('dmsgd', () => ATC)
