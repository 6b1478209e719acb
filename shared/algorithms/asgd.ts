import { z } from 'zod'
import { allFinite, isValidVector } from '../math/vector'
import { norm } from '../robust/clip'
import { PullCheck, PushClipper, PushShareLimiter } from '../robust/ps-clip'
import { lrAt } from '../schedule'
import { acceptClock, isDeadline, type Envelope, type Membership, type PeerId } from '../transport'
import { acceptHandover, childController, handOverServerState, PS_KIND, pushMetaSchema, serveKind, whilePs, withDeadline } from './ps-common'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'

/**
 * ASGD: asynchronous parameter server (docs/algorithms.md "ASGD"). The peer named in
 * `Membership.roles.ps` runs a server loop in the background and also trains as a worker.
 *
 * Worker step: compute g at its copy of W, push g; the server applies it on arrival,
 * v ← βv + (g + wd·W)/n, W ← W − η v (n = roster size, so n pushes move W like one SSGD step
 * of the global batch, as the OD-SGD paper's reference setup does), and replies with the new W, which the
 * worker adopts. Each gradient is applied at most once: pushes carry a per-worker sequence
 * number, the mesh drops duplicates of (from, kind, round), and a worker never re-sends.
 *
 * PS churn (docs/algorithms.md "Parameter-server churn"): a leaving PS hands W and v to every peer (the successor — the first other peer
 * of the roster, which is whom the signaling server elects — first). An ungracefully lost PS is
 * replaced by the new holder starting from its own latest copy Ŵ (momentum 0), which then
 * announces W to the workers. A worker whose PS does not answer by the named deadline takes a
 * local SGD step instead and goes on: nobody stalls on a dead server.
 * The PS plumbing and the hand-over itself are shared with od-sgd.ts (ps-common.ts).
 *
 * Robust (`robust: 'on'`, docs/algorithms.md "Robust aggregation"; shared/robust/ps-clip.ts): the
 * server clips each pushed gradient to a running robust bound of the push norms and refuses
 * pushes beyond a worker's share of the recent ones (answered with W, not applied); a worker
 * adopts pulled or announced weights only within a bound of its own copy Ŵ. Each reports the
 * other side after repeated clips or rejections.
 */

export const versionMetaSchema = z.object({ version: z.number().int().min(0) })

/** Server state of the ASGD parameter server. */
class AsgdServer {
  readonly v: Float32Array
  /** Gradients applied so far, over all holders of the role (carried through hand-over). */
  version: number
  applied = 0

  constructor(private readonly ctx: AlgorithmContext, readonly W: Float32Array, v: Float32Array | null, version: number) {
    this.v = v ?? new Float32Array(W.length)
    this.version = version
  }

  /** Applies one gradient, exactly once per call; returns the new W (shared buffer: copy before keeping). */
  apply(from: PeerId, g: Float32Array): Float32Array {
    const { config, mesh } = this.ctx
    const n = Math.max(1, mesh.membership().peers.length)
    const lr = lrAt(config.schedule, config.lr, mesh.clock.value, config.totalSteps)
    const { W, v } = this
    const beta = config.momentum
    const wd = config.weightDecay
    for (let k = 0; k < W.length; k++) {
      v[k] = beta * v[k] + (g[k] + wd * W[k]) / n
      W[k] -= lr * v[k]
    }
    this.version++
    this.applied++
    this.ctx.log('asgd/applied', { from, version: this.version })
    return W
  }
}

class Asgd implements AlgorithmInstance {
  readonly name = 'asgd' as const
  private readonly stop: AbortController
  private server: AsgdServer | null = null
  private serverStop: AbortController | null = null
  /** Latest global weights seen (Ŵ) and their version: the fallback when this peer inherits the role. */
  private hat: { W: Float32Array; version: number }
  /** A hand-over received before (or while) this peer took the role. */
  private handover: { W: Float32Array; v: Float32Array; version: number } | null = null
  /** Weights announced by a new PS, adopted at the start of the next step. */
  private pending: Float32Array | null = null
  private seq = 0
  private stepCount = 0
  private misses = 0
  private readonly d: number
  private unsub: () => void = () => undefined
  /** Robust aggregation state (config.robust 'on'): the server's clip and rate limit, the worker's pull check. */
  private readonly robust: { clip: PushClipper; limit: PushShareLimiter; pull: PullCheck } | null

  constructor(private readonly ctx: AlgorithmContext, init: Float32Array) {
    this.stop = childController(ctx.signal)
    this.d = ctx.compute.paramCount
    this.hat = { W: init, version: 0 }
    const report = (p: PeerId, why: string) => {
      ctx.log('robust/suspect', { peer: p, why })
      if (ctx.mesh.membership().peers.includes(p)) ctx.mesh.reportSuspect(p, why)
    }
    this.robust = ctx.config.robust === 'on'
      ? { clip: new PushClipper(report), limit: new PushShareLimiter(), pull: new PullCheck(report) }
      : null
  }

  private k(kind: string): string {
    return `asgd/${kind}`
  }

  start(): void {
    const { mesh } = this.ctx
    this.unsub = mesh.onMembership((m) => this.onMembership(m))
    void serveKind(this.ctx, [this.k(PS_KIND.handover), this.k(PS_KIND.announce)], this.stop.signal, (e) => this.onControl(e))
    this.onMembership(mesh.membership())
  }

  private onMembership(m: Membership): void {
    if (m.roles.ps === this.ctx.mesh.self && !this.server) this.becomePs(m)
    else if (m.roles.ps !== this.ctx.mesh.self && this.server) this.dropPs()
  }

  private becomePs(m: Membership): void {
    const h = this.handover
    const fromHandover = h !== null && h.version >= this.hat.version
    this.server = fromHandover
      ? new AsgdServer(this.ctx, new Float32Array(h.W), new Float32Array(h.v), h.version)
      : new AsgdServer(this.ctx, new Float32Array(this.hat.W), null, this.hat.version)
    this.handover = null
    this.serverStop = childController(this.stop.signal)
    this.ctx.log('asgd/ps-start', { fromHandover, version: this.server.version, epoch: m.epoch })
    void serveKind(this.ctx, [this.k(PS_KIND.push), this.k(PS_KIND.hello)], this.serverStop.signal, (e) => this.onServer(e))
    // A PS that was not handed the state tells the workers which W it continues from.
    if (!fromHandover && m.epoch > 0 && this.stepCount > 0) void this.broadcast(this.k(PS_KIND.announce), this.server.W, { version: this.server.version })
  }

  private dropPs(): void {
    this.serverStop?.abort(new Error('no longer PS'))
    this.serverStop = null
    this.server = null
  }

  private async broadcast(kind: string, data: Float32Array, meta: Record<string, unknown>): Promise<void> {
    const { mesh } = this.ctx
    const m = mesh.membership()
    const others = m.peers.filter((p) => p !== mesh.self)
    const round = ++this.seq
    await withDeadline(`${kind}-broadcast`, this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
      Promise.allSettled(others.map((p) => mesh.send(p, { kind, round, data, meta }, sig))))
  }

  private async onServer(e: Envelope): Promise<void> {
    const server = this.server
    if (!server) return
    const { mesh } = this.ctx
    if (e.kind === this.k(PS_KIND.hello)) {
      await withDeadline('asgd/hello-reply', this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
        mesh.send(e.from, { kind: this.k(PS_KIND.weights), round: e.round, data: server.W, meta: { version: server.version } }, sig))
      return
    }
    const meta = pushMetaSchema.safeParse(e.meta)
    // Robust: the push's norm, which the clip needs, is also its finiteness check (clip.ts norm),
    // so robust mode reads a push once, like 'off' (docs/security.md "The attacks benchmark").
    const pushNorm = this.robust && e.data instanceof Float32Array && e.data.length === this.d ? norm(e.data) : NaN
    if (!meta.success || !(this.robust ? Number.isFinite(pushNorm) : isValidVector(e.data, this.d))) {
      this.ctx.log('asgd/rejected-push', { from: e.from })
      mesh.rejectFrom?.(e.from, 'asgd push: invalid meta, wrong length or NaN/Inf')
      return
    }
    let g = e.data as Float32Array
    if (this.robust) {
      // The workers that push over the network: everyone but this server.
      if (!this.robust.limit.admit(e.from, mesh.membership().peers.length - 1)) {
        // Over its share of the recent pushes: answered with W, not applied.
        this.ctx.log('asgd/rate-limited', { from: e.from })
        await withDeadline('asgd/push-reply', this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
          mesh.send(e.from, { kind: this.k(PS_KIND.weights), round: e.round, data: server.W, meta: { version: server.version } }, sig))
        return
      }
      const c = this.robust.clip.clip(e.from, g, false, pushNorm)
      if (c.scale < 1) this.ctx.log('asgd/clipped', { from: e.from, norm: c.norm, tau: c.tau })
      g = c.g
    }
    const W = server.apply(e.from, g)
    this.hat = { W: new Float32Array(W), version: server.version }
    await withDeadline('asgd/push-reply', this.ctx.config.stepDeadlineMs, this.stop.signal, (sig) =>
      mesh.send(e.from, { kind: this.k(PS_KIND.weights), round: e.round, data: W, meta: { version: server.version } }, sig))
  }

  private async onControl(e: Envelope): Promise<void> {
    const meta = versionMetaSchema.safeParse(e.meta)
    if (!meta.success) return
    if (e.kind === this.k(PS_KIND.handover)) {
      const state = await acceptHandover(this.ctx, 'asgd', e, this.d, { version: meta.data.version }, this.stop.signal)
      if (!state) return
      const h = { ...state, version: meta.data.version }
      if (this.server && this.server.version <= h.version && this.server.applied === 0) {
        this.server.W.set(h.W)
        this.server.v.set(h.v)
        this.server.version = h.version
      } else this.handover = h
      if (h.version >= this.hat.version) this.hat = { W: h.W, version: h.version }
      return
    }
    // Announcement of a new PS that continues from its own Ŵ: adopt it as the compute weights.
    if (e.from !== this.ctx.mesh.membership().roles.ps || !isValidVector(e.data, this.d)) return
    if (!this.pullAcceptable(e.from, e.data)) return
    this.hat = { W: e.data, version: meta.data.version }
    this.pending = e.data
  }

  /** docs/algorithms.md "Joining a running swarm": pull W from the PS (bounded); a peer that gets no answer starts from its own init. */
  async bootstrap(): Promise<void> {
    const { mesh } = this.ctx
    const ps = mesh.membership().roles.ps
    if (!ps || ps === mesh.self) return
    const round = ++this.seq
    const watch = whilePs(this.ctx, ps, 'asgd/bootstrap', this.ctx.config.stepDeadlineMs, this.stop.signal)
    try {
      await mesh.send(ps, { kind: this.k(PS_KIND.hello), round }, watch.signal)
      const e = await mesh.receive({ kind: this.k(PS_KIND.weights), round, from: ps }, watch.signal)
      const meta = versionMetaSchema.safeParse(e.meta)
      if (meta.success && isValidVector(e.data, this.d)) {
        await this.ctx.compute.writeParams(e.data)
        this.hat = { W: e.data, version: meta.data.version }
        // The PS's clock is the swarm's progress (our lr schedule keys off it), bounded.
        acceptClock(mesh, e)
      }
    } catch (err) {
      this.ctx.log('asgd/bootstrap-failed', { ps, error: String(err) })
    } finally {
      watch.done()
    }
  }

  async step(): Promise<StepReport> {
    const { compute, config, mesh } = this.ctx
    if (this.pending) {
      await compute.writeParams(this.pending)
      this.pending = null
    }
    const lr = lrAt(config.schedule, config.lr, mesh.clock.value, config.totalSteps)
    // Pushes and hellos sent to us while we were not the PS are never served: keep the mailbox bounded.
    if (!this.server) mesh.discard({ kind: [this.k(PS_KIND.push), this.k(PS_KIND.hello)] })
    const g = await compute.gradient()
    // Robust on the server: the norm the clip records is the finiteness check (one pass, not two).
    const ownNorm = this.robust && this.server && mesh.membership().roles.ps === mesh.self ? norm(g.grad) : NaN
    if (!(Number.isNaN(ownNorm) ? allFinite(g.grad) : Number.isFinite(ownNorm))) throw new Error('asgd: non-finite gradient')
    let communicated = false
    const ps = mesh.membership().roles.ps
    if (ps === mesh.self && this.server) {
      // The PS trains too: its gradient goes straight into the server (no network hop). Robust:
      // its norm joins the clip's history (it is trusted, never clipped).
      this.robust?.clip.clip(mesh.self, g.grad, true, Number.isNaN(ownNorm) ? undefined : ownNorm)
      const W = this.server.apply(mesh.self, g.grad)
      this.hat = { W: new Float32Array(W), version: this.server.version }
      await compute.writeParams(W)
      communicated = true
    } else if (ps && ps !== mesh.self && mesh.membership().peers.includes(ps)) {
      mesh.want([ps])
      communicated = await this.pushPull(ps, g.grad, g.samples)
    }
    if (!communicated) await this.localStep(g.grad, lr)
    this.stepCount++
    mesh.clock.advance(mesh.clock.value + 1)
    return { step: this.stepCount, globalStep: mesh.clock.value, loss: g.loss, samples: g.samples, lr, communicated, contributors: communicated ? 1 : 0 }
  }

  private async pushPull(ps: PeerId, grad: Float32Array, samples: number): Promise<boolean> {
    const { mesh, compute } = this.ctx
    const round = ++this.seq
    // Pull waits for the server's queue: give it twice the per-message deadline.
    const watch = whilePs(this.ctx, ps, 'asgd/push-pull', 2 * this.ctx.config.stepDeadlineMs, this.stop.signal)
    try {
      await mesh.send(ps, { kind: this.k(PS_KIND.push), round, data: grad, meta: { samples } }, watch.signal)
      const e = await mesh.receive({ kind: this.k(PS_KIND.weights), round, from: ps }, watch.signal)
      const meta = versionMetaSchema.safeParse(e.meta)
      if (!meta.success || !isValidVector(e.data, this.d)) {
        mesh.rejectFrom?.(ps, 'asgd weights: invalid meta, wrong length or NaN/Inf')
        throw new Error('invalid weights from PS')
      }
      // Robust: weights too far from our own copy are not adopted; this step falls back to local.
      if (!this.pullAcceptable(ps, e.data)) return false
      await compute.writeParams(e.data)
      this.hat = { W: e.data, version: meta.data.version }
      acceptClock(mesh, e)
      this.misses = 0
      return true
    } catch (err) {
      this.ctx.log('asgd/ps-timeout', { ps, round, error: String(err) })
      if (isDeadline(err) && ++this.misses >= this.ctx.config.suspectAfterMisses) {
        mesh.reportSuspect(ps, `asgd: ${this.misses} pulls timed out`)
        this.misses = 0
      }
      return false
    } finally {
      watch.done()
    }
  }

  /** Robust: whether weights from `ps` are within the pull check's bound of Ŵ (always true with robust 'off'). */
  private pullAcceptable(ps: PeerId, W: Float32Array): boolean {
    if (!this.robust) return true
    const c = this.robust.pull.check(ps, W, this.hat.W)
    if (!c.ok) this.ctx.log('asgd/pull-rejected', { ps, dist: c.dist, bound: c.bound })
    return c.ok
  }

  /** Fallback while no PS answers: a plain local SGD step on the compute weights. */
  private async localStep(grad: Float32Array, lr: number): Promise<void> {
    const x = await this.ctx.compute.readParams()
    const wd = this.ctx.config.weightDecay
    for (let k = 0; k < x.length; k++) x[k] -= lr * (grad[k] + wd * x[k])
    await this.ctx.compute.writeParams(x)
  }

  async evalParams(): Promise<Float32Array> {
    return this.server ? new Float32Array(this.server.W) : new Float32Array(this.hat.W)
  }

  /** docs/algorithms.md "Parameter-server churn": a leaving PS hands W and the server momentum over, successor first. */
  async leave(): Promise<void> {
    const server = this.server
    if (server) {
      this.serverStop?.abort(new Error('leaving'))
      await handOverServerState(this.ctx, 'asgd', server, ++this.seq, { version: server.version }, this.stop.signal)
    }
    this.dispose()
  }

  dispose(): void {
    this.unsub()
    if (!this.stop.signal.aborted) this.stop.abort(new Error('asgd disposed'))
    this.server = null
  }
}

export const asgd: AlgorithmFactory = async (ctx) => {
  const inst = new Asgd(ctx, await ctx.compute.readParams())
  inst.start()
  await inst.bootstrap()
  return inst
}
