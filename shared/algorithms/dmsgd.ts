import { makeGossip } from './dpsgd'

/** DmSGD (§5.2): local heavy-ball then gossip of the stepped model (ATC), x ← Σ w (x_j − γ m_j). */
export const dmsgd = makeGossip('dmsgd', () => 'atc')
