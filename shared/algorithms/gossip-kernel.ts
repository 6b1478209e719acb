import type { AlgorithmName } from '../config'
import { VectorArena } from '../math/arena'
import { ClippedGossip } from '../robust/clipped-gossip'
import {
  foldMissing, mixingWeights, neighbors, symmetricMixingWeights, symmetricNeighbors, type MixingWeights, type NeighborSets,
} from '../topology'
import type { PeerId } from '../transport'
import {
  averageParams, consensusProxy, foldHandovers, handOverModel, LeaveInbox, leaveTargets, lrFor, mixReceived, NeighborExchange,
  requestState, startStateResponder, type ExchangeResult,
} from './common'
import { gossipKind } from './message-kinds'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'

/**
 * The peer around a neighbour-gossip update rule: D-PSGD (dpsgd.ts), DmSGD (dmsgd.ts) and
 * DecentLaM (decentlam.ts) each own their step; this module owns what they share. Every step
 * exchanges one vector with the topology neighbours, with mixing weights from the current roster
 * and missing neighbours folded onto self. A joiner starts at the average of its neighbours'
 * models with m = 0; a graceful leaver hands its x to its neighbours, who fold it in once at
 * their next step.
 *
 * With `robust: 'on'` the neighbour mix is ClippedGossip (shared/robust/clipped-gossip.ts,
 * docs/algorithms.md "Robust aggregation"): each neighbour's difference is clipped to an adaptive
 * radius, hand-overs of leavers too, and a neighbour clipped round after round is reported. The
 * rules call `peer.mix()`, which is exactly mixReceived with robust 'off'.
 */

/** An update rule of the family. */
export interface GossipRule {
  /** Arena vectors its step allocates besides x and m. */
  readonly vectors: number
  /** Mixes with W_s = (W + Wᵀ)/2 instead of W (the same graph on undirected topologies). */
  readonly symmetric?: boolean
  /** Builds the step of `peer`, allocating its vectors from `peer.arena`. */
  make(peer: GossipPeer): () => Promise<StepReport>
}

/** This step's graph from the current roster: who to send to and receive from, and the weights. */
export interface GossipGraph {
  readonly sets: NeighborSets
  readonly w: MixingWeights
}

/** What a step starts from (see GossipPeer.begin). */
export interface GossipStepStart {
  readonly lr: number
  readonly beta: number
  readonly wd: number
  readonly nb: NeighborSets
  readonly w: MixingWeights
}

/** The factory of a gossip algorithm whose rule may depend on the config (dpsgd's order). */
export function gossipAlgorithm(name: AlgorithmName, ruleFor: (ctx: AlgorithmContext) => GossipRule): AlgorithmFactory {
  return async (ctx) => {
    const rule = ruleFor(ctx)
    const peer = await GossipPeer.start(ctx, name, rule)
    return peer.instance(name, rule.make(peer))
  }
}

export class GossipPeer {
  readonly d: number
  /** The kind of the per-step vector. */
  readonly kind: string
  readonly ex: NeighborExchange
  /** Local step counter: the exchange round. */
  step = 0
  /** Global progress (max-merged), the schedule's step. */
  t = 0
  readonly m: Float32Array
  /** ClippedGossip state when config.robust is 'on'; null for the plain weighted average. */
  readonly robust: ClippedGossip | null
  private ready = false
  private readonly stopResponder: () => void
  private readonly inbox: LeaveInbox
  private readonly nbOf: typeof neighbors
  private readonly wOf: typeof mixingWeights

  /**
   * x, m and the step's vectors live in one WebAssembly memory so the per-step mix and update run
   * as SIMD kernels in place (shared/math/arena.ts; bench/mixing.ts: 4.5 ms vs 11.6 ms for the JS
   * loops at 1M params and 4 neighbours).
   */
  static async start(ctx: AlgorithmContext, name: AlgorithmName, rule: GossipRule): Promise<GossipPeer> {
    const arena = new VectorArena(ctx.compute.paramCount, { slots: 2 + rule.vectors })
    const x = arena.alloc()
    x.set(await ctx.compute.readParams())
    const peer = new GossipPeer(ctx, name, rule, arena, x)
    await peer.bootstrap()
    return peer
  }

  private constructor(
    readonly ctx: AlgorithmContext, name: AlgorithmName, rule: GossipRule, readonly arena: VectorArena, readonly x: Float32Array,
  ) {
    this.d = ctx.compute.paramCount
    this.kind = gossipKind(name)
    this.ex = new NeighborExchange(ctx)
    this.m = arena.alloc()
    this.robust = ctx.config.robust === 'on' ? new ClippedGossip((p, why) => this.suspect(p, why)) : null
    ;[this.nbOf, this.wOf] = rule.symmetric ? [symmetricNeighbors, symmetricMixingWeights] : [neighbors, mixingWeights]
    this.stopResponder = startStateResponder(ctx, async () =>
      this.ready ? { params: new Float32Array(this.x), opt: [], step: this.step, globalStep: this.t, extra: {} } : null)
    this.inbox = new LeaveInbox(ctx)
  }

  graph(): GossipGraph {
    const { config, mesh } = this.ctx
    const mem = mesh.membership()
    return {
      sets: this.nbOf(config.topology, mem.peers, mesh.self, this.step, mem.roles.ps),
      w: this.wOf(config.topology, mem.peers, mesh.self, this.step, mem.roles.ps),
    }
  }

  /** Bootstrap at the average of the (future) neighbours' models, momentum 0. */
  private async bootstrap(): Promise<void> {
    const { compute, mesh } = this.ctx
    const { sets } = this.graph()
    const targets = [...new Set([...sets.receiveFrom, ...sets.sendTo])]
    const states = await requestState(this.ctx, targets)
    if (states.length > 0) {
      this.x.set(averageParams(states))
      this.step = Math.max(...states.map((s) => s.step))
      this.t = Math.max(...states.map((s) => s.globalStep))
      await compute.writeParams(this.x)
      mesh.clock.observe(this.t)
    }
    this.ready = true
  }

  /**
   * Start of a step: catches t up with the swarm, reads this step's lr and graph, and folds in a
   * neighbour's graceful leave once, before the exchange, so the mixing already spreads it.
   */
  async begin(): Promise<GossipStepStart> {
    const { compute, config, mesh } = this.ctx
    this.t = Math.max(this.t, this.step, mesh.clock.value)
    const lr = lrFor(this.ctx, this.t)
    const { sets, w } = this.graph()
    const hs = this.inbox.take()
    if (this.robust ? this.robust.foldHandovers(this.x, hs) : foldHandovers(this.x, hs)) await compute.writeParams(this.x)
    return { lr, beta: config.momentum, wd: config.weightDecay, nb: sets, w }
  }

  /**
   * out = the mix of `own` with the received neighbour vectors, missing weight folded onto self:
   * mixReceived (the weighted average) with robust 'off', ClippedGossip with 'on'
   * (docs/algorithms.md "Robust aggregation"). `out` may alias `own`.
   */
  mix(out: Float32Array, own: Float32Array, weights: MixingWeights, res: ExchangeResult): { folded: number; contributors: number } {
    if (!this.robust) return mixReceived(out, own, weights, res, this.arena)
    const w = foldMissing(weights, res.missing)
    const peers: PeerId[] = []
    const ws: number[] = []
    const vs: Float32Array[] = []
    for (const [p, wp] of w.in) {
      const v = res.received.get(p)
      if (!v) continue
      peers.push(p)
      ws.push(wp)
      vs.push(v)
    }
    this.robust.combine(out, own, w.self, peers, ws, vs, this.arena)
    return { folded: res.missing.length, contributors: res.received.size }
  }

  /** A neighbour the sanity gate flagged: logged, and reported while it is in the roster. */
  private suspect(peer: PeerId, why: string): void {
    const { ctx } = this
    ctx.log('robust/suspect', { peer, why })
    if (ctx.mesh.membership().peers.includes(peer)) ctx.mesh.reportSuspect(peer, why)
  }

  /**
   * End of a step: writes x to the device and continues from the round the exchange ended at
   * (later when this peer was behind). `received` are the neighbour models for the consensus proxy.
   */
  async finish(
    res: ExchangeResult, info: { folded: number; contributors: number }, loss: number, samples: number, lr: number,
    received: ReadonlyMap<PeerId, Float32Array> = res.received,
  ): Promise<StepReport> {
    const { compute, mesh } = this.ctx
    await compute.writeParams(this.x)
    this.step = Math.max(this.step, res.round)
    this.step++
    this.t++
    mesh.clock.advance(this.t)
    return {
      step: this.step, globalStep: this.t, loss, samples, lr, communicated: true,
      contributors: info.contributors, folded: info.folded, consensus: consensusProxy(this.x, received, this.arena),
    }
  }

  instance(name: AlgorithmName, step: () => Promise<StepReport>): AlgorithmInstance {
    return {
      name,
      step,
      evalParams: async () => new Float32Array(this.x),
      leave: async () => {
        await handOverModel(this.ctx, this.x, leaveTargets(this.ctx, this.step))
        this.dispose()
      },
      dispose: () => this.dispose(),
    }
  }

  private dispose(): void {
    this.stopResponder()
    this.inbox.dispose()
  }
}
