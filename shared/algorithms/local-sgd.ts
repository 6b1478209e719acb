import type { AlgorithmName } from '../config'
import { linkTopology } from './descriptors'
import type { LocalStepOptions } from './types'
import { nextH } from '../schedule'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import {
  allGatherWithRetry, allReduceWithRetry, robustMean, averageParams, foldHandovers, handOverModel, LeaveInbox, leaveTargets, lrFor, medianState, others,
  requestState, startStateResponder, type PeerState,
} from './common'

/**
 * Local SGD / Local AdamW with QSR (docs/algorithms.md "Local SGD and Local AdamW"): H local steps on the device (no host round trip),
 * then a sample-weighted parameter average over the roster (docs/algorithms.md "Local SGD rounds and joiners"), optionally of the optimizer
 * state too; H recomputed right after each averaging from the global step (docs/algorithms.md "Quadratic Synchronization Rule").
 *
 * Round alignment. Every peer's responder reports its *position*: the round whose all-reduce it
 * takes part in next, the global step t, H and the local steps done in that round. The tuple is
 * updated synchronously when an averaging settles, so it is never half old, half new.
 * - Join (docs/algorithms.md "Local SGD rounds and joiners"): the joiner fetches the positions, then waits at the boundary of the group's
 *   current round: it takes part in that round's all-reduce with weight 0 and so receives x̄,
 *   and starts the next round at the boundary's t with the group's H and a fresh optimizer
 *   state. If the boundary is missed (bounded wait), it falls back to the average of the fetched
 *   parameters and the furthest peer's position.
 * - After a failed averaging (a departure splitting a round, a stalled tab) the peer asks the
 *   others for their positions and adopts the furthest one if it is in a later round (keeping
 *   its own parameters), as lap-sgd does. A peer whose all-reduce timed out asks first whether
 *   anyone is in a later round already; if so it gives the round up after one deadline instead
 *   of three, so the peers ahead (still retrying theirs) are joined while they wait.
 */

/** Positions in order: round, then local steps into it. */
function byPosition(a: PeerState, b: PeerState): number {
  return (a.extra.round ?? 0) - (b.extra.round ?? 0) || (a.extra.localCnt ?? 0) - (b.extra.localCnt ?? 0)
}

/**
 * Whether a reported position's counters fit together (requestState already bounded each by the
 * clock's ceiling or the run's length): whole rounds and local steps, H between 1 and the run's
 * length, at most H local steps into the round.
 */
function plausible(s: PeerState, totalSteps: number): boolean {
  const { round = 0, localCnt = 0, h } = s.extra
  return Number.isInteger(round) && Number.isInteger(localCnt) && (h === undefined || (h >= 1 && h <= Math.max(1, totalSteps))) &&
    localCnt <= (h ?? totalSteps)
}

/** The furthest position: highest round, then most local steps into it. */
function furthest(states: readonly PeerState[]): PeerState | undefined {
  let best: PeerState | undefined
  for (const s of states) if (!best || byPosition(s, best) > 0) best = s
  return best
}

/**
 * The position a joiner adopts: the lower median of the answers (docs/security.md), so one peer
 * claiming a later round is not followed while others answered; in a healthy group every member
 * is in the same round, so the median is that round.
 */
function medianPosition(states: readonly PeerState[]): PeerState | undefined {
  return medianState(states, byPosition)
}

/** How many times a joiner re-targets the group's boundary before falling back to a mid-round copy. */
const JOIN_ATTEMPTS = 4

function makeLocal(name: AlgorithmName): AlgorithmFactory {
  return async (ctx) => (await LocalPeer.start(ctx, name)).instance()
}

/** Position: the round whose all-reduce comes next, global step, H, local steps in the round. */
interface Position {
  t: number
  round: number
  h: number
  localCnt: number
}

class LocalPeer {
  private readonly d: number
  private readonly adam: boolean
  /** How many optimizer-state fields are averaged (moments only: Adam's step counter stays local). */
  private readonly kState: number
  private readonly pos: Position
  private samplesInRound = 0
  private ready = false
  /** The later-round position that made average() give a round up, for the resync() after it. */
  private aheadSeen: PeerState | undefined
  private readonly stop: () => void
  /** Opened once the join is done. */
  private inbox!: LeaveInbox

  static async start(ctx: AlgorithmContext, name: AlgorithmName): Promise<LocalPeer> {
    const peer = new LocalPeer(ctx, name)
    await peer.join()
    peer.ready = true
    peer.inbox = new LeaveInbox(ctx)
    return peer
  }

  private constructor(private readonly ctx: AlgorithmContext, private readonly name: AlgorithmName) {
    const { compute, config } = ctx
    this.d = compute.paramCount
    this.adam = name === 'local-adamw'
    this.pos = { t: 0, round: 0, h: this.hFor(0), localCnt: 0 }
    this.stop = startStateResponder(ctx, async () => {
      const pos = this.pos
      return this.ready ? { params: await compute.readParams(), opt: [], step: pos.t, globalStep: pos.t, extra: { round: pos.round, h: pos.h, localCnt: pos.localCnt } } : null
    })
    this.kState = config.averageOptimizerState ? (this.adam ? 2 : 1) : 0
  }

  instance(): AlgorithmInstance {
    const { compute, config } = this.ctx
    return {
      name: this.name,
      step: () => this.takeStep(),
      evalParams: () => compute.readParams(),
      leave: async () => {
        await handOverModel(this.ctx, await compute.readParams(), leaveTargets(this.ctx, 0, linkTopology(config)))
        this.stop()
        this.inbox.dispose()
      },
      dispose: () => {
        this.stop()
        this.inbox.dispose()
      },
    }
  }

  private hFor(t: number): number {
    const { config } = this.ctx
    return nextH(config.sync, t, lrFor(this.ctx, t), config.totalSteps, config.schedule.warmupSteps)
  }

  private adopt(s: PeerState): void {
    const pos = this.pos
    pos.t = s.globalStep
    pos.round = s.extra.round ?? 0
    pos.h = s.extra.h ?? this.hFor(pos.t)
    pos.localCnt = s.extra.localCnt ?? 0
    if (pos.localCnt >= pos.h) {
      // The peer is at its boundary (inside the all-reduce): one local step before it, so our
      // next step ends on the same t and joins that all-reduce.
      pos.t = Math.max(0, pos.t - 1)
      pos.localCnt = pos.h - 1
    }
    this.ctx.mesh.clock.observe(pos.t)
  }

  /**
   * One sample-weighted all-reduce of x and `state` (kState fields) for `round` with weight c.
   * Writes the mean parameters on success (and passes the mean state to `adoptState`); returns
   * the member count, or null when it failed.
   */
  private async average(
    round: number, x: Float32Array, state: readonly Float32Array[], c: number,
    opts: { attempts?: number; adoptState?: (mean: Float32Array[]) => Promise<void> } = {},
  ): Promise<number | null> {
    const { ctx, d } = this
    const k = state.length
    const robust = ctx.config.robust === 'on'
    // Robust (docs/algorithms.md "Robust aggregation"): unweighted [x, state, c], combined by
    // common.ts robustMean (the trimmed mean of the contributors, unweighted).
    const w = robust ? (c > 0 ? 1 : 0) : c
    const build = () => {
      const v = new Float32Array(d * (1 + k) + 1)
      for (let i = 0; i < d; i++) v[i] = w * x[i]
      state.forEach((s, j) => { for (let i = 0; i < d; i++) v[(j + 1) * d + i] = w * s[i] })
      v[v.length - 1] = c
      return v
    }
    const collective = robust
      ? (...a: Parameters<typeof allGatherWithRetry>) => allGatherWithRetry(...a).then((r) => robustMean(r, d * (1 + k)))
      : allReduceWithRetry
    const res = await collective(ctx, this.name, round, build, {
      ...(opts.attempts === undefined ? {} : { attempts: opts.attempts }),
      // After a deadline in an unchanged roster: if someone is already past this round, nobody
      // will complete it; give up now and let resync() line us up, instead of spending the
      // remaining attempts (whole deadlines) on it while the others wait for us in theirs.
      retryAfterTimeout: async () => {
        const ahead = furthest(await this.positions())
        if (!ahead || (ahead.extra.round ?? 0) <= round) return true
        // resync() follows this failed averaging: it adopts this answer instead of asking
        // again (a second round trip, a whole deadline when a member does not answer).
        this.aheadSeen = ahead
        return false
      },
    })
    const total = res?.sum[res.sum.length - 1] ?? 0
    // Every member but a joiner adds a weight ≥ 1 (its samples, at least 1), and a group is never
    // only joiners: a total below 1 is a forged weight (docs/security.md) whose 1/total would blow the
    // mean up. Every member holds the same sum, so all of them give the round up alike.
    if (!res || !(total >= 1)) return null
    const inv = 1 / total
    await ctx.compute.writeParams(res.sum.subarray(0, d).map((v) => v * inv))
    if (k && opts.adoptState) await opts.adoptState(state.map((_, j) => res.sum.slice((j + 1) * d, (j + 2) * d).map((v) => v * inv)))
    return res.members
  }

  /** docs/algorithms.md "Local SGD rounds and joiners" join: wait at the group's next round boundary and receive x̄ there (weight 0). */
  private async join(): Promise<void> {
    const { ctx, d, name } = this
    let states = await this.positions()
    const first = medianPosition(states)
    if (first && first.globalStep === 0 && (first.extra.round ?? 0) === 0 && (first.extra.localCnt ?? 0) === 0) {
      // The group has not taken a step yet (peers that started together): round 0's averaging
      // is still ahead for everyone, so there is nothing to wait for; waiting at its boundary
      // would only cost JOIN_ATTEMPTS deadlines while the others wait for us in the same way.
      ctx.log(`${name}/join-fresh`, { peers: states.length })
      return
    }
    for (let a = 0; a < JOIN_ATTEMPTS && states.length > 0 && !ctx.signal.aborted; a++) {
      const s = medianPosition(states)!
      const round = s.extra.round ?? 0
      const h = s.extra.h ?? this.hFor(s.globalStep)
      // The round's boundary: where the group's H local steps of this round end.
      const tBoundary = s.globalStep - (s.extra.localCnt ?? 0) + h
      // Weight 0: the joiner only receives the mean (same vector layout as the others').
      const zeros = Array.from({ length: this.kState }, () => new Float32Array(d))
      const members = await this.average(round, new Float32Array(d), zeros, 0, { attempts: 1 })
      if (members !== null) {
        this.startAtBoundary(round, tBoundary, members)
        return
      }
      // Not there yet (the group is still stepping towards the boundary) or it moved on: look again.
      states = await this.positions()
    }
    if (states.length > 0) {
      // Fallback: the group's current average and the median position, mid-round.
      await ctx.compute.writeParams(averageParams(states))
      this.adopt(medianPosition(states)!)
      ctx.log(`${name}/join-midround`, { round: this.pos.round, t: this.pos.t, localCnt: this.pos.localCnt })
    }
  }

  /** The joiner received x̄ at the end of `round`: it starts the next round there with the group's H. */
  private startAtBoundary(round: number, tBoundary: number, members: number): void {
    const pos = this.pos
    pos.t = tBoundary
    pos.round = round + 1
    pos.h = this.hFor(tBoundary)
    pos.localCnt = 0
    this.ctx.mesh.clock.observe(pos.t)
    this.ctx.log(`${this.name}/join-boundary`, { round, t: tBoundary, members })
  }

  /** The other peers' positions whose counters fit together (see plausible); the rest are counted against their senders. */
  private async positions(): Promise<PeerState[]> {
    const { ctx } = this
    const states = await requestState(ctx, others(ctx))
    return states.filter((s) => {
      if (plausible(s, ctx.config.totalSteps)) return true
      ctx.log(`${this.name}/implausible-position`, { round: s.extra.round, h: s.extra.h, localCnt: s.extra.localCnt, t: s.globalStep })
      return false
    })
  }

  /** After a failed averaging: continue at the furthest peer's position if it is in a later round. */
  private async resync(): Promise<void> {
    const s = this.aheadSeen ?? furthest(await this.positions())
    this.aheadSeen = undefined
    if (!s) return
    const r = s.extra.round ?? 0
    if (r > this.pos.round) {
      this.ctx.log(`${this.name}/resync`, { from: this.pos.round, to: r, localCnt: s.extra.localCnt })
      this.adopt(s)
    }
  }

  private stepOptions(lr: number): LocalStepOptions {
    const { config } = this.ctx
    return this.adam
      ? { optimizer: 'adamw', lr, beta1: config.adam.beta1, beta2: config.adam.beta2, eps: config.adam.eps, weightDecay: config.weightDecay }
      : { optimizer: 'sgd', lr, momentum: config.momentum, weightDecay: config.weightDecay }
  }

  private async takeStep(): Promise<StepReport> {
    const { compute, mesh } = this.ctx
    const pos = this.pos
    // A peer's graceful leave (docs/algorithms.md "Graceful leave"): folded in once into the local model; the next averaging
    // spreads it. Costs a host round trip only on the step after a leave.
    const hs = this.inbox.take()
    if (hs.length) {
      const x = await compute.readParams()
      foldHandovers(x, hs)
      await compute.writeParams(x)
    }
    const lr = lrFor(this.ctx, pos.t)
    const { loss, samples } = await compute.localStep(this.stepOptions(lr))
    pos.t++
    pos.localCnt++
    this.samplesInRound += samples
    mesh.clock.advance(pos.t)
    const report: StepReport = { step: pos.t, globalStep: pos.t, loss, samples, lr, h: pos.h, communicated: false }
    if (pos.localCnt < pos.h) return report
    await this.endRound(report)
    return report
  }

  /** The averaging at the end of a round, then the next round's position; fills in `report`. */
  private async endRound(report: StepReport): Promise<void> {
    const { compute } = this.ctx
    const { adam, kState, pos } = this
    const x = await compute.readParams()
    const state = kState ? await compute.readOptimizerState() : []
    const round = pos.round
    const members = await this.average(round, x, state.slice(0, kState), Math.max(1, this.samplesInRound), {
      adoptState: (mean) => compute.writeOptimizerState(adam ? [...mean, ...state.slice(2)] : mean),
    })
    // The next position, set in one go (the responder may read it at any await).
    pos.round = round + 1
    pos.localCnt = 0
    pos.h = this.hFor(pos.t)
    this.samplesInRound = 0
    if (members !== null) report.contributors = members
    // Line up with the others again (a split round, a stalled tab).
    else await this.resync()
    report.communicated = members !== null
  }
}

export const localSgd = makeLocal('local-sgd')
export const localAdamw = makeLocal('local-adamw')
