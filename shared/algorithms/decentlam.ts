import { makeGossip } from './dpsgd'

/** DecentLaM (§5.4): heavy-ball on the modified gradient g̃ = (x − Σ w (x_j − γ g_j))/γ. */
export const decentlam = makeGossip('decentlam', () => 'decentlam')
