import { z } from 'zod'
import { allFinite, isValidVector } from '../math/vector'
import { PullCheck, PUSH_MAX_ROUNDS_AHEAD, PushClipper } from '../robust/ps-clip'
import { lrAt } from '../schedule'
import { acceptClock, scopedDeadline, type Envelope, type Membership, type PeerId } from '../transport'
import { acceptHandover, childController, handOverServerState, Notifier, pushMetaSchema, serveKind, whilePs, withDeadline } from './ps-common'
import { OD_SGD_STATE_KIND, psKind } from './message-kinds'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'

/**
 * OD-SGD (Xu et al., arXiv 2005.06728; docs/algorithms.md "OD-SGD"), from the official MXNet code.
 *
 * Server (the peer in roles.ps, which also trains): for round t it waits for the gradients g_t^i
 * of every roster member, or until the named deadline `od-sgd/server-round` counted from the
 * round's first arrival, then takes one synchronous global momentum step on the sample-weighted
 * partial average: ḡ = Σ s_i g_i / Σ s_i, v ← βv + ḡ + wd·W, W_{t+1} = W_t − η v, and sends
 * W_{t+1} to every worker. A gradient of round t−1 that missed its round is folded into round t
 * (bounded staleness 1, docs/algorithms.md "Parameter-server churn"). Contributions are summed in peer-id order so the result does not
 * depend on arrival order.
 *
 * Worker, iteration t (after the SSGD warm start of `warmStartSteps` iterations):
 *   g_t = ∇F(w̃_t)                      (overlaps with the server's round t−1)
 *   push g_t;  wait for Ŵ = W_t           (one-step-delayed pull)
 *   w̃_{t+1} = LocalOpt(Ŵ, g_t)           ('sgd': Ŵ − η_ℓ(g + wd·Ŵ);
 *                                        'cadcasgd': … + λ g²/√(g²+1e-7) ⊙ (Ŵ − Ŵ_prev))
 * so with η_ℓ = 0 the server trajectory is exactly SSGD with one-step-stale gradients.
 * During warm start the worker waits for W_{t+1} and computes on it (plain SSGD).
 *
 * Churn: hand-over of W, v, t through ps-common.ts (as asgd); an ungracefully promoted PS continues from its own
 * Ŵ and announces (t, W). A worker whose wait expires (dead or slow PS) takes a local SGD step
 * and goes on; it catches up as soon as global weights arrive.
 *
 * Robust (`robust: 'on'`, docs/algorithms.md "Robust aggregation"; shared/robust/ps-clip.ts): the
 * server clips each pushed gradient to a running robust bound of the push norms, caps its sample
 * count at the room's batch size (a claimed 2²⁴ samples would otherwise outweigh everyone) and
 * drops pushes for rounds more than PUSH_MAX_ROUNDS_AHEAD past its own (one push per round and
 * worker is already the rule: that is the rate limit); a worker adopts broadcast weights only
 * within a bound of its own Ŵ. Each reports the other side after repeated clips or rejections.
 */

const K = {
  hello: psKind('od-sgd', 'hello'),
  state: OD_SGD_STATE_KIND,
  push: psKind('od-sgd', 'push'),
  weights: psKind('od-sgd', 'weights'),
  handover: psKind('od-sgd', 'handover'),
  announce: psKind('od-sgd', 'announce'),
}

/** How many past global weights a worker keeps (it needs W_t and W_{t−1}). */
const RECENT_ROUNDS = 3

const roundMetaSchema = z.object({ t: z.number().int().min(0) })

/** CADCASGD's MS floor (optimizer_op-inl.h: MS = m·MS + (1−m)g² + 1e-7 with m = 0). */
const CADCASGD_EPS = 1e-7

interface Contribution {
  g: Float32Array
  samples: number
}

/** The synchronous global optimizer of the PS. */
export class OdSgdServer {
  readonly v: Float32Array
  /** Gradients by round and sender. */
  private readonly inbox = new Map<number, Map<PeerId, Contribution>>()
  readonly changed = new Notifier()
  rounds = 0

  constructor(private readonly ctx: AlgorithmContext, readonly W: Float32Array, v: Float32Array | null, public t: number) {
    this.v = v ?? new Float32Array(W.length)
  }

  submit(from: PeerId, round: number, c: Contribution): void {
    // Older than one round: useless (docs/algorithms.md "Parameter-server churn" bounded staleness 1). Newer: kept for its round.
    if (round < this.t - 1) return
    let m = this.inbox.get(round)
    if (!m) this.inbox.set(round, (m = new Map()))
    if (!m.has(from)) m.set(from, c)
    this.changed.notify()
  }

  /** Waits for round t to fill (or the deadline), steps, and returns W_{t+1}; null when stopped. */
  async runRound(signal: AbortSignal): Promise<Float32Array | null> {
    const { ctx } = this
    const cur = () => this.inbox.get(this.t)
    const has = () => (cur()?.size ?? 0) > 0
    const firstPending = () => {
      let r = Infinity
      for (const [k, m] of this.inbox) if (k > this.t && m.size > 0) r = Math.min(r, k)
      return r
    }
    // No deadline before the first gradient: an idle server must not step.
    if (!(await this.changed.until(() => has() || firstPending() < Infinity, signal))) return null
    if (!has()) {
      // Only later rounds arrived (a new PS after hand-over: the workers moved on, or reordering).
      // Give round t one deadline to show up, then continue at the workers' round.
      const skip = scopedDeadline('od-sgd/server-skip', ctx.config.stepDeadlineMs, signal)
      await this.changed.until(has, skip.signal)
      skip.done()
      if (signal.aborted) return null
      if (!has()) {
        ctx.log('od-sgd/server-skip', { from: this.t, to: firstPending() })
        this.t = firstPending()
      }
    }
    const full = () => ctx.mesh.membership().peers.every((p) => cur()?.has(p))
    const dl = scopedDeadline('od-sgd/server-round', ctx.config.stepDeadlineMs, signal)
    const off = ctx.mesh.onMembership(() => this.changed.notify())
    try {
      await this.changed.until(full, dl.signal)
    } finally {
      off()
      dl.done()
    }
    if (signal.aborted) return null
    const got = cur()!
    const late = this.inbox.get(this.t - 1)
    const parts: Contribution[] = []
    for (const p of [...got.keys()].sort()) parts.push(got.get(p)!)
    if (late) for (const p of [...late.keys()].sort()) parts.push(late.get(p)!)
    this.step(parts)
    // Both are consumed; a round-t gradient arriving from now on is late and lands in round t+1.
    this.inbox.delete(this.t - 1)
    this.inbox.delete(this.t)
    ctx.log('od-sgd/server-step', { t: this.t, contributors: got.size, late: late?.size ?? 0, expected: ctx.mesh.membership().peers.length })
    this.t++
    this.rounds++
    return this.W
  }

  /** One global momentum step on the sample-weighted mean of `parts` (float64 accumulation). */
  step(parts: readonly Contribution[]): void {
    const { config } = this.ctx
    const lr = lrAt(config.schedule, config.lr, this.t, config.totalSteps)
    let total = 0
    for (const c of parts) total += c.samples
    const { W, v } = this
    const beta = config.momentum
    const wd = config.weightDecay
    for (let k = 0; k < W.length; k++) {
      let s = 0
      for (const c of parts) s += c.samples * c.g[k]
      v[k] = beta * v[k] + s / total + wd * W[k]
      W[k] -= lr * v[k]
    }
  }
}

class OdSgd implements AlgorithmInstance {
  readonly name = 'od-sgd' as const
  private readonly stop: AbortController
  private server: OdSgdServer | null = null
  private serverStop: AbortController | null = null
  /** Latest global weights Ŵ = W_t; `gen` changes when a new PS restarts the sequence. */
  private hat: { t: number; W: Float32Array; gen: number }
  /** Ŵ at the previous local update (CADCASGD's w_prev). */
  private prevHat: Float32Array | null = null
  private readonly hatChanged = new Notifier()
  /** The last few global weights by round: W_t is still needed when W_{t+1} arrived first (the PS's own worker). */
  private readonly recent = new Map<number, Float32Array>()
  private handover: { W: Float32Array; v: Float32Array; t: number } | null = null
  private lastPush: { t: number; grad: Float32Array; samples: number } | null = null
  /** Iteration index of the gradient computed next. */
  private t = 0
  private seq = 0
  private stepCount = 0
  private misses = 0
  private readonly d: number
  private unsub: () => void = () => undefined
  /** Robust aggregation state (config.robust 'on'): the server's clip, the worker's pull check. */
  private readonly robust: { clip: PushClipper; pull: PullCheck } | null

  constructor(private readonly ctx: AlgorithmContext, init: Float32Array) {
    this.stop = childController(ctx.signal)
    this.d = ctx.compute.paramCount
    this.hat = { t: 0, W: init, gen: 0 }
    this.recent.set(0, init)
    const report = (p: PeerId, why: string) => {
      ctx.log('robust/suspect', { peer: p, why })
      if (ctx.mesh.membership().peers.includes(p)) ctx.mesh.reportSuspect(p, why)
    }
    this.robust = ctx.config.robust === 'on' ? { clip: new PushClipper(report), pull: new PullCheck(report) } : null
  }

  start(): void {
    this.unsub = this.ctx.mesh.onMembership((m) => this.onMembership(m))
    void serveKind(this.ctx, [K.weights, K.announce, K.handover], this.stop.signal, (e) => this.onControl(e))
    this.onMembership(this.ctx.mesh.membership())
  }

  /**
   * Records global weights W_t. Ŵ (the newest) only moves forward, except on a restart by a new
   * PS; an older W_t that arrives late (reordered) is still kept for the round that needs it.
   */
  /**
   * A round number from the PS (or a hand-over) is at most the clock's ceiling: the round becomes
   * this peer's step, so a made-up one would push the schedule to its end (docs/security.md).
   */
  private roundBelievable(from: string, t: number): boolean {
    const ceiling = this.ctx.mesh.clock.ceiling()
    if (t <= ceiling) return true
    this.ctx.mesh.rejectFrom?.(from, `od-sgd round ${t} beyond the bound ${Math.floor(ceiling)}`)
    return false
  }

  private setHat(t: number, W: Float32Array, restart: boolean): void {
    if (restart) this.recent.clear()
    if (restart || t >= this.hat.t) this.hat = { t, W, gen: this.hat.gen + (restart ? 1 : 0) }
    if (t >= this.hat.t - RECENT_ROUNDS) this.recent.set(t, W)
    for (const k of this.recent.keys()) if (k < this.hat.t - RECENT_ROUNDS) this.recent.delete(k)
    this.hatChanged.notify()
  }

  private onMembership(m: Membership): void {
    const self = this.ctx.mesh.self
    if (m.roles.ps === self && !this.server) this.becomePs(m)
    else if (m.roles.ps !== self && this.server) {
      this.serverStop?.abort(new Error('no longer PS'))
      this.server = null
    } else if (this.server && this.server.rounds > 0) {
      // Messages of the old epoch still in flight are dropped as stale (docs/algorithms.md "Message tagging and staleness"): re-send the latest
      // W (receivers drop it as a duplicate if the first copy arrived).
      void this.broadcast(K.weights, this.server.t, this.server.W)
    }
    // Same for our last push; the server keeps one gradient per (round, sender).
    const last = this.lastPush
    if (last && m.roles.ps !== self) void this.push(last.t, last.grad, last.samples)
    this.hatChanged.notify()
  }

  private becomePs(m: Membership): void {
    const h = this.handover
    const fromHandover = h !== null && h.t >= this.hat.t
    const server = fromHandover
      ? new OdSgdServer(this.ctx, new Float32Array(h.W), new Float32Array(h.v), h.t)
      : new OdSgdServer(this.ctx, new Float32Array(this.hat.W), null, this.hat.t)
    this.server = server
    this.handover = null
    const stop = (this.serverStop = childController(this.stop.signal))
    this.ctx.log('od-sgd/ps-start', { fromHandover, t: server.t, epoch: m.epoch })
    void serveKind(this.ctx, [K.push, K.hello], stop.signal, (e) => this.onServer(server, e))
    void this.serverLoop(server, stop.signal)
    if (fromHandover) this.setHat(server.t, new Float32Array(server.W), false)
    else if (this.stepCount > 0) {
      // Promoted after an ungraceful loss: everyone restarts from our Ŵ.
      this.setHat(server.t, new Float32Array(server.W), true)
      void this.broadcast(K.announce, server.t, server.W)
    }
  }

  private async serverLoop(server: OdSgdServer, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const W = await server.runRound(signal)
      if (!W) return
      this.setHat(server.t, new Float32Array(W), false)
      await this.broadcast(K.weights, server.t, W)
    }
  }

  private async broadcast(kind: string, t: number, W: Float32Array): Promise<void> {
    const { mesh } = this.ctx
    const others = mesh.membership().peers.filter((p) => p !== mesh.self)
    await withDeadline(`${kind}-broadcast`, this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
      Promise.allSettled(others.map((p) => mesh.send(p, { kind, round: t, data: W, meta: { t } }, sig))))
  }

  private async onServer(server: OdSgdServer, e: Envelope): Promise<void> {
    if (e.kind === K.hello) {
      await withDeadline('od-sgd/hello-reply', this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
        this.ctx.mesh.send(e.from, { kind: K.state, round: e.round, data: server.W, meta: { t: server.t } }, sig))
      return
    }
    const meta = pushMetaSchema.safeParse(e.meta)
    if (!meta.success || !isValidVector(e.data, this.d)) {
      this.ctx.log('od-sgd/rejected-push', { from: e.from })
      this.ctx.mesh.rejectFrom?.(e.from, 'od-sgd push: invalid meta, wrong length or NaN/Inf')
      return
    }
    if (!this.robust) {
      server.submit(e.from, e.round, { g: e.data, samples: meta.data.samples })
      return
    }
    if (e.round > server.t + PUSH_MAX_ROUNDS_AHEAD) {
      this.ctx.log('od-sgd/rate-limited', { from: e.from, round: e.round, t: server.t })
      return
    }
    const c = this.robust.clip.clip(e.from, e.data)
    if (c.scale < 1) this.ctx.log('od-sgd/clipped', { from: e.from, norm: c.norm, tau: c.tau })
    server.submit(e.from, e.round, { g: c.g, samples: Math.min(meta.data.samples, this.ctx.config.batchSize) })
  }

  private async onControl(e: Envelope): Promise<void> {
    const meta = roundMetaSchema.safeParse(e.meta)
    if (!meta.success) return
    const t = meta.data.t
    // The round becomes our step (mesh.clock.advance(this.t)): bounded like any remote clock.
    if (!this.roundBelievable(e.from, t)) return
    if (e.kind === K.handover) {
      const state = await acceptHandover(this.ctx, 'od-sgd', e, this.d, { t }, this.stop.signal)
      if (!state) return
      const h = { ...state, t }
      const s = this.server
      if (s && s.rounds === 0 && s.t <= t) {
        s.W.set(h.W)
        s.v.set(h.v)
        s.t = t
        this.setHat(t, new Float32Array(h.W), false)
      } else if (!s) this.handover = h
      return
    }
    if (e.from !== this.ctx.mesh.membership().roles.ps || !isValidVector(e.data, this.d)) return
    if (this.robust && !this.server) {
      // Weights too far from our own Ŵ are not adopted: the step waiting for them goes local.
      const c = this.robust.pull.check(e.from, e.data, this.hat.W)
      if (!c.ok) {
        this.ctx.log('od-sgd/pull-rejected', { ps: e.from, t, dist: c.dist, bound: c.bound })
        return
      }
    }
    if (e.kind === K.announce) this.setHat(t, e.data, true)
    else this.setHat(t, e.data, false)
  }

  /** docs/algorithms.md "Parameter-server churn" join: pull (t, W_t) from the PS and start at iteration t with w̃ = Ŵ = W_t. */
  async bootstrap(): Promise<void> {
    const { mesh, compute } = this.ctx
    const ps = mesh.membership().roles.ps
    if (!ps || ps === mesh.self) return
    const round = ++this.seq
    const watch = whilePs(this.ctx, ps, 'od-sgd/bootstrap', this.ctx.config.stepDeadlineMs, this.stop.signal)
    try {
      await mesh.send(ps, { kind: K.hello, round }, watch.signal)
      const e = await mesh.receive({ kind: K.state, round, from: ps }, watch.signal)
      const meta = roundMetaSchema.safeParse(e.meta)
      if (meta.success && isValidVector(e.data, this.d) && meta.data.t >= this.hat.t && this.roundBelievable(ps, meta.data.t)) {
        this.setHat(meta.data.t, e.data, false)
        this.t = meta.data.t
        await compute.writeParams(e.data)
        acceptClock(mesh, { from: ps, clock: this.t })
      }
    } catch (err) {
      this.ctx.log('od-sgd/bootstrap-failed', { ps, error: String(err) })
    } finally {
      watch.done()
    }
  }

  private async push(t: number, grad: Float32Array, samples: number): Promise<void> {
    const { mesh } = this.ctx
    this.lastPush = { t, grad, samples }
    const ps = mesh.membership().roles.ps
    if (ps === mesh.self) {
      // Robust: the server's own gradient joins the clip's history (trusted, never clipped).
      this.robust?.clip.clip(mesh.self, grad, true)
      this.server?.submit(mesh.self, t, { g: new Float32Array(grad), samples })
      return
    }
    if (!ps || !mesh.membership().peers.includes(ps)) return
    mesh.want([ps])
    await withDeadline('od-sgd/push', this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
      mesh.send(ps, { kind: K.push, round: t, data: grad, meta: { samples } }, sig)).catch(() => undefined)
  }

  /**
   * Waits for W_need (or a restart by a new PS, or the server being ≥2 rounds past `need`, when
   * W_need is not coming any more); false on deadline / no PS.
   */
  private async awaitHat(need: number, gen: number): Promise<boolean> {
    const { mesh } = this.ctx
    const ready = () => this.recent.has(need) || this.hat.gen !== gen || this.hat.t > need + 1
    if (ready()) return true
    const ps = mesh.membership().roles.ps
    if (!ps || !mesh.membership().peers.includes(ps)) return false
    // The server may wait its full round deadline before it steps: allow that plus the transfer.
    await withDeadline('od-sgd/pull', 2 * this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
      this.hatChanged.until(() => ready() || mesh.membership().roles.ps !== ps, sig))
    return ready()
  }

  private localLr(t: number): number {
    const c = this.ctx.config
    // The local lr follows the global schedule's shape (docs/algorithms.md "OD-SGD": local decay tracks the global one).
    return c.localLr * (lrAt(c.schedule, c.lr, t, c.totalSteps) / c.lr)
  }

  async step(): Promise<StepReport> {
    const { compute, config, mesh } = this.ctx
    const t = this.t
    const gen = this.hat.gen
    const warm = t < config.warmStartSteps
    const lr = lrAt(config.schedule, config.lr, t, config.totalSteps)
    // Pushes and hellos sent to us while we were not the PS are never served: keep the mailbox bounded.
    if (!this.server) mesh.discard({ kind: [K.push, K.hello] })
    const g = await compute.gradient()
    if (!allFinite(g.grad)) throw new Error('od-sgd: non-finite gradient')
    await this.push(t, g.grad, g.samples)
    const need = warm ? t + 1 : t
    const ok = await this.awaitHat(need, gen)
    const hat = this.hat
    const exact = hat.gen === gen ? this.recent.get(need) : undefined
    let w: Float32Array
    let communicated = true
    // Not ok but Ŵ is past `need`: W_need never came and the server moved on — catch up below.
    if (!ok && hat.t <= need) {
      // Dead or late PS: keep training locally on w̃ (never stall); catch up when Ŵ arrives.
      communicated = false
      w = await compute.readParams()
      for (let k = 0; k < this.d; k++) w[k] -= lr * (g.grad[k] + config.weightDecay * w[k])
      if (++this.misses >= config.suspectAfterMisses) {
        const ps = mesh.membership().roles.ps
        if (ps && ps !== mesh.self) mesh.reportSuspect(ps, `od-sgd: ${this.misses} pulls timed out`)
        this.misses = 0
      }
      this.ctx.log('od-sgd/pull-timeout', { t })
    } else if (!exact) {
      // Catching up after a PS restart or a round we missed: compute on the newest W.
      this.misses = 0
      w = new Float32Array(hat.W)
      this.t = hat.t
      this.prevHat = null
    } else if (warm) {
      // Warm start: plain SSGD on W_{t+1}.
      this.misses = 0
      w = new Float32Array(exact)
      this.t = need
    } else {
      this.misses = 0
      w = this.localOpt(exact, g.grad, t)
      this.prevHat = exact
      this.t = t + 1
    }
    await compute.writeParams(w)
    this.stepCount++
    mesh.clock.advance(this.t)
    return { step: this.stepCount, globalStep: this.t, loss: g.loss, samples: g.samples, lr, communicated }
  }

  /** w̃_{t+1} = LocalOpt(Ŵ = W_t, g_t) (docs/algorithms.md "OD-SGD" step 2). */
  private localOpt(W: Float32Array, g: Float32Array, t: number): Float32Array {
    const c = this.ctx.config
    const lrl = this.localLr(t)
    const wd = c.weightDecay
    const out = new Float32Array(this.d)
    const prev = this.prevHat
    if (c.localOptimizer === 'cadcasgd' && prev) {
      const lambda = c.dcLambda
      for (let k = 0; k < this.d; k++) {
        const gk = g[k]
        const dc = (lambda * gk * gk * (W[k] - prev[k])) / Math.sqrt(gk * gk + CADCASGD_EPS)
        out[k] = W[k] - lrl * (gk + wd * W[k] + dc)
      }
    } else {
      for (let k = 0; k < this.d; k++) out[k] = W[k] - lrl * (g[k] + wd * W[k])
    }
    return out
  }

  async evalParams(): Promise<Float32Array> {
    return this.server ? new Float32Array(this.server.W) : new Float32Array(this.hat.W)
  }

  /** docs/algorithms.md "Parameter-server churn": a leaving PS hands W, v and t over (successor first). */
  async leave(): Promise<void> {
    const server = this.server
    if (server) {
      this.serverStop?.abort(new Error('leaving'))
      await handOverServerState(this.ctx, 'od-sgd', server, server.t, { t: server.t }, this.stop.signal)
    }
    this.dispose()
  }

  dispose(): void {
    this.unsub()
    if (!this.stop.signal.aborted) this.stop.abort(new Error('od-sgd disposed'))
    this.server = null
  }
}

export const odSgd: AlgorithmFactory = async (ctx) => {
  const inst = new OdSgd(ctx, await ctx.compute.readParams())
  inst.start()
  await inst.bootstrap()
  return inst
}

