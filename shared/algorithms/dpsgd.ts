import type { AlgorithmName } from '../config'
import { VectorArena } from '../math/arena'
import { concat } from '../math/vector'
import { mixingWeights, neighbors, symmetricMixingWeights, symmetricNeighbors } from '../topology'
import { yieldToEventLoop } from '../transport'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import {
  averageParams, consensusProxy, foldHandovers, handOverModel, LeaveInbox, leaveTargets, lrFor, mixReceived,
  NeighborExchange, requestState, startStateResponder,
} from './common'

/**
 * The neighbour-gossip family (§3, §5): one exchange with the topology neighbours per step,
 * MH / exponential weights from the current roster, missing neighbours folded onto self.
 *   dpsgd AWC (default): x ← Σ w x_j − γ m,        m = βm + g + λx   (g at the un-mixed x)
 *   dpsgd ATC / dmsgd:   x ← Σ w (x_j − γ m_j),    m = βm + g + λx   (§5.2)
 *   decentlam:           g̃ = w_ii g + Σ_j w_j [(x − h_j)/γ],  h_j = x_j − γ g_j;  m = βm + g̃;  x ← x − γm (§5.4)
 * A joiner starts at the average of its neighbours' models with m = 0 (§3.6, §5.6). A graceful
 * leaver hands its x to its neighbours, who fold it in once at their next step (§9.4).
 */
export type GossipVariant = 'awc' | 'atc' | 'decentlam'

export function makeGossip(name: AlgorithmName, pickVariant: (ctx: AlgorithmContext) => GossipVariant): AlgorithmFactory {
  return async (ctx) => {
    const { compute, config, mesh } = ctx
    const variant = pickVariant(ctx)
    const d = compute.paramCount
    const ex = new NeighborExchange(ctx)
    // x, m and the mixed model live in a WebAssembly memory so the per-step mix and update run as
    // SIMD kernels in place (shared/math/arena.ts; bench/mixing.ts: 4.5 ms vs 11.6 ms for the JS
    // loops at 1M params and 4 neighbours).
    const arena = new VectorArena(d, { slots: variant === 'atc' ? 4 : 3 })
    const x = arena.alloc()
    x.set(await compute.readParams())
    const m = arena.alloc()
    const mixed = arena.alloc()
    const half = variant === 'atc' ? arena.alloc() : mixed
    let step = 0
    let t = 0
    let ready = false
    const kind = `${name}/x`
    // DecentLaM runs heavy-ball on the gossip correction (I − W)x/γ, which is only stable when W
    // has a real spectrum: on the directed exponential graphs it mixes with (W + Wᵀ)/2 instead
    // (docs/algorithms.md "DecentLaM on directed graphs").
    const [nbOf, wOf] = variant === 'decentlam' ? [symmetricNeighbors, symmetricMixingWeights] : [neighbors, mixingWeights]
    const sets = () => {
      const mem = mesh.membership()
      return {
        sets: nbOf(config.topology, mem.peers, mesh.self, step, mem.roles.ps),
        w: wOf(config.topology, mem.peers, mesh.self, step, mem.roles.ps),
      }
    }
    const stop = startStateResponder(ctx, async () =>
      ready ? { params: new Float32Array(x), opt: [], step, globalStep: t, extra: {} } : null)
    const inbox = new LeaveInbox(ctx)

    // Bootstrap at the average of the (future) neighbours' models, momentum 0.
    const { sets: s0 } = sets()
    const targets = [...new Set([...s0.receiveFrom, ...s0.sendTo])]
    const states = await requestState(ctx, targets)
    if (states.length > 0) {
      x.set(averageParams(states))
      step = Math.max(...states.map((s) => s.step))
      t = Math.max(...states.map((s) => s.globalStep))
      await compute.writeParams(x)
      mesh.clock.observe(t)
    }
    ready = true

    const inst: AlgorithmInstance = {
      name,
      async step(): Promise<StepReport> {
        t = Math.max(t, step, mesh.clock.value)
        const lr = lrFor(ctx, t)
        const beta = config.momentum
        const wd = config.weightDecay
        const { sets: nb, w } = sets()
        // A neighbour's graceful leave (§9.4): its model is folded in once, before this step's
        // exchange, so the mixing below already spreads it.
        if (foldHandovers(x, inbox.take())) await compute.writeParams(x)
        let loss: number
        let samples: number
        let res
        let info
        if (variant === 'awc') {
          // Communication of x^k overlaps the gradient at x^k (Lian et al.): both only read x^k.
          // Send a snapshot: x is updated in place below, possibly while a send to a neighbour
          // that is still connecting has not been encoded yet.
          const pending = ex.exchange(kind, step, x.slice(), nb)
          // mesh.send encodes and writes to the data channel a few microtasks later; on the wasm
          // and cpu backends compute.gradient() runs its kernels synchronously, so without this
          // yield the model would only leave after the gradient is done (no overlap at all).
          await yieldToEventLoop()
          const gr = await compute.gradient()
          ;({ loss, samples } = gr)
          res = await pending
          info = mixReceived(mixed, x, w, res, arena)
          // m = βm + g + λx ; x = mixed − γm
          arena.momentum(x, m, gr.grad, beta, lr, wd, mixed)
        } else if (variant === 'atc') {
          const gr = await compute.gradient()
          ;({ loss, samples } = gr)
          // m = βm + g + λx ; half = x − γm
          half.set(x)
          arena.momentum(half, m, gr.grad, beta, lr, wd)
          // The payload is a copy: `half` is overwritten next step, maybe before a send is encoded.
          res = await ex.exchange(kind, step, half.slice(), nb)
          info = mixReceived(mixed, half, w, res, arena)
          x.set(mixed)
        } else {
          const gr = await compute.gradient()
          ;({ loss, samples } = gr)
          const g = new Float32Array(d)
          for (let i = 0; i < d; i++) g[i] = gr.grad[i] + wd * x[i]
          // During warmup γ starts at 0, so (x − h_j)/γ would be 0/0: send [x, g] instead and use
          // the algebraic form (x − x_j)/γ·… → here per neighbour: (x − x_j)/γ + g_j with γ > 0,
          // and skip the gossip term entirely while γ = 0 (x does not move then anyway).
          const split = t < config.schedule.warmupSteps
          const payload = split ? concat([x, g]) : (() => {
            const h = new Float32Array(d)
            for (let i = 0; i < d; i++) h[i] = x[i] - lr * g[i]
            return h
          })()
          res = await ex.exchange(kind, step, payload, nb, {
            length: split ? 2 * d : d, meta: { split },
            // Around the end of warmup neighbours may disagree on `split` for a step: the other
            // form is folded like a missing vector but is not evidence of a bad peer.
            benignLengths: [d, 2 * d],
          })
          // g̃ = w_self·g + Σ_j w_j·term_j (missing neighbours: their weight goes to the self term).
          const folded = new Map(w.in)
          let wSelf = w.self
          for (const p of res.missing) {
            wSelf += folded.get(p) ?? 0
            folded.delete(p)
          }
          const gt = new Float32Array(d)
          for (let i = 0; i < d; i++) gt[i] = wSelf * g[i]
          const recvX = new Map<string, Float32Array>()
          for (const [p, wp] of folded) {
            const v = res.received.get(p)!
            if (split) {
              const xj = v.subarray(0, d)
              const gj = v.subarray(d)
              recvX.set(p, xj)
              for (let i = 0; i < d; i++) gt[i] += wp * ((lr > 0 ? (x[i] - xj[i]) / lr : 0) + gj[i])
            } else {
              for (let i = 0; i < d; i++) gt[i] += wp * ((x[i] - v[i]) / lr)
            }
          }
          if (lr > 0 || split) {
            for (let i = 0; i < d; i++) {
              m[i] = beta * m[i] + gt[i]
              x[i] -= lr * m[i]
            }
          }
          info = { folded: res.missing.length, contributors: res.received.size }
          if (split) res = { ...res, received: recvX }
        }
        await compute.writeParams(x)
        // Continue from the round the exchange ended at (later when we were behind).
        step = Math.max(step, res.round)
        step++
        t++
        mesh.clock.advance(t)
        return {
          step, globalStep: t, loss, samples, lr, communicated: true,
          contributors: info.contributors, folded: info.folded, consensus: consensusProxy(x, res.received, arena),
        }
      },
      evalParams: async () => new Float32Array(x),
      async leave() {
        await handOverModel(ctx, x, leaveTargets(ctx, step))
        stop()
        inbox.dispose()
      },
      dispose() {
        stop()
        inbox.dispose()
      },
    }
    return inst
  }
}

/** Re-exported for tests; lives in shared/transport.ts. */
export { yieldToEventLoop }

export const dpsgd: AlgorithmFactory = makeGossip('dpsgd', (ctx) => ctx.config.order)
