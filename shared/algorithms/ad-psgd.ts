import { z } from 'zod'
import { allFinite, isValidVector, sqDist } from '../math/vector'
import { clipScale, dist } from '../robust/clip'
import { clippedPairwiseMove, PairwiseClip } from '../robust/clip-pairwise'
import { lrAt } from '../schedule'
import { neighbors } from '../topology'
import { acceptClock, isDeadline, scopedDeadline, type Envelope, type Membership, type PeerId, type ScopedDeadline } from '../transport'
import { Rng } from '../data/rng'
import { foldHandovers, handOverModel, LeaveInbox, leaveTargets, rosterDeadline } from './common'
import { AD_PSGD_KIND as KIND } from './message-kinds'
import type { AlgorithmContext, AlgorithmFactory, AlgorithmInstance, StepReport } from './types'

/**
 * AD-PSGD (Lian et al. 2018; docs/algorithms.md "AD-PSGD"): no global barrier. Each step a peer computes a
 * gradient, gossips with ONE random neighbour by atomic pairwise averaging, and applies its
 * gradient locally. Requests are served by a background loop, so a peer keeps training while it
 * serves others.
 *
 * Exchange protocol (one id per initiator, carried in `round`):
 *   initiator A ──request──▶ B
 *   B: busy with another exchange? ──busy──▶ A (immediately; B never waits while serving, so there
 *      is no wait cycle and no deadlock whatever the graph)
 *   B: else snapshot s_B ──accept(s_B)──▶ A
 *   A: snapshot s_A ──exchange(s_A)──▶ B, then x_A += (s_B − s_A)/2          (A is committed)
 *   B: on exchange: x_B += (s_A − s_B)/2 ──done──▶ A
 * Applying the *difference* to the current x keeps gradient steps made meanwhile (Δ) and moves the
 * pair's sum by exactly 0; with no concurrent step both end at (s_A + s_B)/2. A peer holds one
 * `busy` token across both roles, so it is in at most one averaging at a time.
 *
 * Both halves or neither. The exchange message is A's commit point: before it, any failure
 * (deadline, partner gone, *any* roster change) aborts A without writing and A sends `cancel`, on
 * which B aborts too. After it, A has applied its half, so B must apply the other one: B's wait
 * for `exchange` survives roster changes (it ends only on `cancel`, on A leaving, or at B's own
 * deadline, which outlasts A's whole exchange), and A re-sends `exchange` on every new epoch and
 * periodically until B's `done` arrives. That matters because a join or leave anywhere in the
 * room bumps the epoch and the mailbox drops in-flight messages of the old epoch as stale
 * (docs/algorithms.md "Message tagging and staleness"): without the re-send a third peer's churn would leave the pair half-averaged.
 *
 * Robust (`robust: 'on'`, docs/algorithms.md "Robust aggregation"): both sides apply
 * x += clip(s_other − s_own, τ)/2 instead (shared/robust/clip-pairwise.ts), so a hostile partner
 * moves an honest peer by at most τ/2 per exchange; hand-overs of leavers are clipped the same
 * way, and a partner clipped in 10 exchanges in a row is reported. Without clipping in an
 * exchange the update is exactly the plain one.
 *
 * Roles (docs/algorithms.md "AD-PSGD pairwise averaging" "bipartite active/passive"): on edge (i, j) of the topology the even roster index
 * initiates towards the odd one; on the odd edge of an odd ring (both even) the lower index
 * initiates. Active/passive is per edge, so the last peer of an odd ring both initiates (to its
 * odd neighbour) and serves (peer 0).
 */

const stateMetaSchema = z.object({ fresh: z.boolean(), step: z.number().int().min(0) })

/**
 * After its commit point the initiator re-sends `exchange` this often (as a fraction of the step
 * deadline) until `done`: four tries within the one-deadline confirm window, all inside the
 * passive side's two-deadline wait.
 */
const CONFIRM_RESEND_FRACTION = 0.25

/** True when (a + b)/2 is finite in every coordinate (fp32). */
function finiteMidpoint(a: Float32Array, b: Float32Array): boolean {
  for (let k = 0; k < a.length; k++) if (!Number.isFinite(Math.fround((a[k] + b[k]) / 2))) return false
  return true
}

/** Joiners average the models of at most this many neighbours (docs/algorithms.md "AD-PSGD under churn": "one peer or 2–3"). */
const BOOTSTRAP_DONORS = 3

/** True when `self` initiates exchanges towards `other` (the per-edge active side, see header). */
export function initiates(peers: readonly PeerId[], self: PeerId, other: PeerId): boolean {
  const i = peers.indexOf(self)
  const j = peers.indexOf(other)
  if (i < 0 || j < 0 || i === j) return false
  if (i % 2 !== j % 2) return i % 2 === 0
  return i < j
}

/** Peers `self` may send exchange requests to: topology neighbours on whose edge it is active. */
export function activeTargets(ctx: AlgorithmContext, m: Membership): PeerId[] {
  const self = ctx.mesh.self
  return neighbors(ctx.config.topology, m.peers, self).sendTo.filter((p) => initiates(m.peers, self, p))
}

/** Minimal FIFO async lock: a read-modify-write of the device parameters runs alone. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve()
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn)
    this.tail = r.catch(() => undefined)
    return r
  }
}

/** Seed of a peer's partner choice: deterministic per (run seed, peer id) for reproducible runs. */
function partnerSeed(seed: number, self: PeerId): number {
  let a = seed >>> 0
  for (let i = 0; i < self.length; i++) a = Math.imul(a ^ self.charCodeAt(i), 0x9e3779b1) >>> 0
  return a
}

/**
 * A named deadline that also aborts when `peer` disappears from the roster ("partner leaving"),
 * and with `onAnyChange` when the roster changes at all.
 */
function untilLeaves(
  ctx: AlgorithmContext, peer: PeerId, name: string, ms: number, parent: AbortSignal, onAnyChange: boolean,
): ScopedDeadline {
  return rosterDeadline(ctx, name, ms, parent, (m, changed) => {
    if (!m.peers.includes(peer)) return new Error(`partner ${peer} left`)
    // Before the commit point any roster change aborts: messages of the old epoch still in flight
    // are dropped as stale on arrival (docs/algorithms.md "Message tagging and staleness"), so waiting on for them would only burn the deadline.
    if (changed && onAnyChange) return new Error(`roster changed (epoch ${m.epoch})`)
    return undefined
  })
}

class AdPsgd implements AlgorithmInstance {
  readonly name = 'ad-psgd' as const
  private readonly lock = new Lock()
  private readonly stop = new AbortController()
  /** Seeded partner choice (shared/data/rng.ts). */
  private readonly rng: Rng
  /** The single "in an averaging" token shared by the initiator and server roles. */
  private busy = false
  /** Bumped on every write of the device parameters (lets an exchange tell whether x moved). */
  private version = 0
  private seq = 0
  private stepCount = 0
  private momentum: Float32Array | null = null
  private inFlight: Promise<unknown> = Promise.resolve()
  /** Initiated exchanges that averaged x since the last step report. */
  private exchanged = 0
  /** Committed exchanges whose `done` has not arrived yet (see confirm()). */
  private readonly confirming = new Set<Promise<void>>()
  private consensus: number | undefined
  private misses = new Map<PeerId, number>()
  private readonly d: number
  private readonly inbox: LeaveInbox
  /** Pairwise clipping state when config.robust is 'on'. */
  private readonly robust: PairwiseClip | null

  constructor(private readonly ctx: AlgorithmContext) {
    this.rng = new Rng(partnerSeed(ctx.config.seed, ctx.mesh.self))
    this.d = ctx.compute.paramCount
    this.inbox = new LeaveInbox(ctx)
    this.robust = ctx.config.robust === 'on' ? new PairwiseClip((p, why) => this.suspect(p, why)) : null
    const onParent = () => this.stop.abort(ctx.signal.reason)
    if (ctx.signal.aborted) onParent()
    else ctx.signal.addEventListener('abort', onParent, { once: true })
  }

  private get deadlineMs(): number {
    return this.ctx.config.stepDeadlineMs
  }

  start(): void {
    void this.serveLoop()
    void this.stateLoop()
  }

  /** docs/algorithms.md "Joining a running swarm" gossip bootstrap: average the models of up to 3 neighbours that have trained; else keep ours. */
  async bootstrap(): Promise<void> {
    const { mesh } = this.ctx
    const m = mesh.membership()
    const donors = neighbors(this.ctx.config.topology, m.peers, mesh.self).sendTo.slice(0, BOOTSTRAP_DONORS)
    if (donors.length === 0) return
    const id = ++this.seq
    const dl = scopedDeadline('ad-psgd/bootstrap', this.deadlineMs, this.stop.signal)
    const sig = dl.signal
    const models: Float32Array[] = []
    await Promise.all(donors.map(async (p) => {
      try {
        await mesh.send(p, { kind: KIND.stateRequest, round: id }, sig)
        const e = await mesh.receive({ kind: KIND.state, round: id, from: p }, sig)
        const meta = stateMetaSchema.safeParse(e.meta)
        if (meta.success && !meta.data.fresh && isValidVector(e.data, this.d)) {
          models.push(e.data)
          acceptClock(mesh, e)
        }
      } catch {
        // A donor that left or is slow just does not contribute (docs/algorithms.md "Joining a running swarm" is best effort).
      }
    }))
    dl.done()
    if (models.length === 0) return
    const x = new Float32Array(this.d)
    for (let k = 0; k < this.d; k++) {
      let s = 0
      for (const v of models) s += v[k]
      x[k] = s / models.length
    }
    await this.lock.run(() => this.write(x))
    this.ctx.log('ad-psgd/bootstrap', { donors: models.length })
  }

  /**
   * Host copy of the device parameters, never mutated (write() replaces it). AD-PSGD changes the
   * parameters only through write(), so the device copy never has to be read back: a tfjs read per
   * snapshot, per average and per step was most of the host-side work of a step.
   */
  private mirror: Float32Array | null = null

  private async params(): Promise<Float32Array> {
    return (this.mirror ??= await this.ctx.compute.readParams())
  }

  /** Takes ownership of x (callers pass a fresh array and do not touch it afterwards). */
  private async write(x: Float32Array): Promise<void> {
    await this.ctx.compute.writeParams(x)
    this.mirror = x
    this.version++
  }

  /** Snapshot of x taken under the lock, with the version it belongs to (read-only). */
  private snapshot(): Promise<{ x: Float32Array; version: number }> {
    return this.lock.run(async () => ({ x: await this.params(), version: this.version }))
  }

  /** A partner the sanity gate flagged: logged, and reported while it is in the roster. */
  private suspect(peer: PeerId, why: string): void {
    this.ctx.log('robust/suspect', { peer, why })
    if (this.ctx.mesh.membership().peers.includes(peer)) this.ctx.mesh.reportSuspect(peer, why)
  }

  /**
   * x ← x + (theirs − mine)/2. When x has not moved since `mine` was taken, writes the exact
   * midpoint instead so both sides hold bit-identical models. Robust: x ← x + clip(theirs − mine, τ)/2
   * when the difference is beyond the radius (else as above).
   */
  private applyAverage(mine: { x: Float32Array; version: number }, theirs: Float32Array, partner: PeerId): Promise<void> {
    return this.lock.run(async () => {
      const out = new Float32Array(this.d)
      const rb = this.robust
      const tau = rb ? rb.radius(partner, mine.x) : Infinity
      const r = rb ? dist(theirs, mine.x) : 0
      if (rb && clipScale(r, tau) < 1) {
        const cur = this.version === mine.version ? mine.x : await this.params()
        clippedPairwiseMove(out, cur, mine.x, theirs, 0.5, tau)
      } else if (this.version === mine.version) {
        for (let k = 0; k < this.d; k++) out[k] = (mine.x[k] + theirs[k]) / 2
      } else {
        const cur = await this.params()
        for (let k = 0; k < this.d; k++) out[k] = cur[k] + (theirs[k] - mine.x[k]) / 2
      }
      if (!allFinite(out)) throw new Error('non-finite average')
      await this.write(out)
      rb?.judge(partner, r, tau, mine.x)
      this.consensus = sqDist(mine.x, theirs)
    })
  }

  /** Background server: answers exchange requests; replies `busy` at once when in another exchange. */
  private async serveLoop(): Promise<void> {
    const { mesh } = this.ctx
    while (!this.stop.signal.aborted) {
      let req: Envelope
      try {
        req = await mesh.receive({ kind: KIND.request }, this.stop.signal)
      } catch {
        return
      }
      // Ids of one initiator increase: its older exchange/cancel messages that arrived after the
      // wait for them ended will never be read (keeps the mailbox bounded).
      mesh.discard({ kind: [KIND.exchange, KIND.cancel], from: req.from, where: (e) => e.round < req.round })
      if (this.busy || !mesh.membership().peers.includes(req.from)) {
        mesh.send(req.from, { kind: KIND.busy, round: req.round }).catch(() => undefined)
        continue
      }
      this.busy = true
      const p = this.serve(req).finally(() => (this.busy = false))
      this.inFlight = p
    }
  }

  private async serve(req: Envelope): Promise<void> {
    const { mesh } = this.ctx
    const partner = req.from
    // Twice the initiator's deadline: the initiator's whole exchange, including its re-sends of
    // `exchange` after the commit point (CONFIRM window), ends within one deadline of its start,
    // which was before our accept. Only the partner leaving ends the wait early, not other churn.
    const watch = untilLeaves(this.ctx, partner, 'ad-psgd/serve-exchange', 2 * this.deadlineMs, this.stop.signal, false)
    this.ctx.log('ad-psgd/exchange-start', { partner, id: req.round, role: 'passive' })
    let ok = false
    try {
      const mine = await this.snapshot()
      await mesh.send(partner, { kind: KIND.accept, round: req.round, data: mine.x }, watch.signal)
      const e = await mesh.receive({ kind: [KIND.exchange, KIND.cancel], round: req.round, from: partner }, watch.signal)
      if (e.kind === KIND.cancel) throw new Error('cancelled by the initiator before its commit point')
      if (!isValidVector(e.data, this.d)) {
        mesh.rejectFrom?.(partner, 'ad-psgd exchange: wrong length or NaN/Inf')
        throw new Error('invalid exchange payload')
      }
      acceptClock(mesh, e)
      await this.applyAverage(mine, e.data, partner)
      ok = true
      // Stops the initiator's re-sends. Best effort: a lost `done` only costs it a few re-sends.
      mesh.send(partner, { kind: KIND.done, round: req.round }).catch(() => undefined)
    } catch (err) {
      this.ctx.log('ad-psgd/exchange-abort', { partner, id: req.round, role: 'passive', reason: String(err) })
    } finally {
      watch.done()
      this.ctx.log('ad-psgd/exchange-end', { partner, id: req.round, role: 'passive', ok })
    }
  }

  /** Answers bootstrap requests with the current model (`fresh` until the first step). */
  private async stateLoop(): Promise<void> {
    const { mesh } = this.ctx
    while (!this.stop.signal.aborted) {
      let req: Envelope
      try {
        req = await mesh.receive({ kind: KIND.stateRequest }, this.stop.signal)
      } catch {
        return
      }
      const dl = scopedDeadline('ad-psgd/state-reply', this.deadlineMs, this.stop.signal)
      try {
        const { x } = await this.snapshot()
        await mesh.send(req.from, {
          kind: KIND.state, round: req.round, data: x,
          meta: { fresh: this.stepCount === 0 && this.ctx.mesh.clock.value === 0, step: this.stepCount },
        }, dl.signal)
      } catch {
        // The joiner left or is unreachable: nothing to do.
      } finally {
        dl.done()
      }
    }
  }

  /** Initiator side of one exchange. Returns whether x was averaged. */
  private async exchange(partner: PeerId): Promise<boolean> {
    if (this.busy) return false
    this.busy = true
    const { mesh } = this.ctx
    const id = ++this.seq
    const watch = untilLeaves(this.ctx, partner, 'ad-psgd/exchange', this.deadlineMs, this.stop.signal, true)
    this.ctx.log('ad-psgd/exchange-start', { partner, id, role: 'active' })
    let ok = false
    let committed = false
    const run = (async () => {
      try {
        await mesh.send(partner, { kind: KIND.request, round: id }, watch.signal)
        const rep = await mesh.receive({ kind: [KIND.accept, KIND.busy], round: id, from: partner }, watch.signal)
        if (rep.kind === KIND.busy) return
        if (!isValidVector(rep.data, this.d)) {
          mesh.rejectFrom?.(partner, 'ad-psgd accept: wrong length or NaN/Inf')
          throw new Error('invalid accept payload')
        }
        acceptClock(mesh, rep)
        const mine = await this.snapshot()
        // applyAverage must not fail after the commit point: refuse a pair whose midpoint overflows now.
        if (!finiteMidpoint(mine.x, rep.data)) throw new Error('non-finite average')
        const msg = { kind: KIND.exchange, round: id, data: mine.x }
        const epoch = mesh.membership().epoch
        await mesh.send(partner, msg, watch.signal)
        // Commit point: the exchange is on its way, so from here on B will apply its half (see
        // header) and we apply ours whatever the roster does.
        committed = true
        await this.applyAverage(mine, rep.data, partner)
        ok = true
        this.misses.delete(partner)
        const c = this.confirm(partner, msg, epoch).finally(() => this.confirming.delete(c))
        this.confirming.add(c)
      } catch (err) {
        this.ctx.log('ad-psgd/exchange-abort', { partner, id, role: 'active', reason: String(err), committed })
        // Releases B at once instead of at its deadline; B never applies without our exchange.
        if (!committed) mesh.send(partner, { kind: KIND.cancel, round: id }).catch(() => undefined)
        if (isDeadline(err) || isDeadline(watch.signal.reason)) this.miss(partner)
      } finally {
        watch.done()
        this.busy = false
        this.ctx.log('ad-psgd/exchange-end', { partner, id, role: 'active', ok })
      }
    })()
    this.inFlight = run
    await run
    return ok
  }

  /**
   * After the commit point: re-sends `exchange` whenever the epoch moved past the one it was sent
   * in (the old copy is dropped as stale by B's mailbox) and every CONFIRM_RESEND_FRACTION of the
   * deadline (a lost message), until B's `done`, B leaving, or one deadline. Duplicates of a copy
   * B already consumed are dropped by its mailbox, so B applies at most once.
   */
  private async confirm(partner: PeerId, msg: { kind: string; round: number; data: Float32Array }, sentEpoch: number): Promise<void> {
    const { mesh } = this.ctx
    const gone = new AbortController()
    const dl = scopedDeadline('ad-psgd/confirm', this.deadlineMs, this.stop.signal, gone.signal)
    const signal = dl.signal
    let epoch = sentEpoch
    let resends = 0
    const resend = () => {
      resends++
      mesh.send(partner, msg, signal).catch(() => undefined)
    }
    const onRoster = (m: Membership) => {
      if (!m.peers.includes(partner)) gone.abort(new Error(`partner ${partner} left`))
      else if (m.epoch !== epoch) {
        epoch = m.epoch
        resend()
      }
    }
    const unsub = mesh.onMembership(onRoster)
    onRoster(mesh.membership())
    const timer = setInterval(resend, Math.max(1, this.deadlineMs * CONFIRM_RESEND_FRACTION))
    try {
      await mesh.receive({ kind: KIND.done, round: msg.round, from: partner }, signal)
      if (resends > 0) this.ctx.log('ad-psgd/exchange-confirmed', { partner, id: msg.round, resends })
    } catch (err) {
      this.ctx.log('ad-psgd/exchange-unconfirmed', { partner, id: msg.round, resends, reason: String(err) })
    } finally {
      clearInterval(timer)
      unsub()
      dl.done()
    }
  }

  private miss(peer: PeerId): void {
    const n = (this.misses.get(peer) ?? 0) + 1
    this.misses.set(peer, n)
    if (n >= this.ctx.config.suspectAfterMisses) {
      this.ctx.mesh.reportSuspect(peer, `ad-psgd: ${n} exchanges timed out`)
      this.misses.delete(peer)
    }
  }

  async step(): Promise<StepReport> {
    const { compute, config, mesh } = this.ctx
    const globalStep = mesh.clock.value
    const lr = lrAt(config.schedule, config.lr, globalStep, config.totalSteps)
    const hs = this.inbox.take()
    if (hs.length) {
      // A neighbour's graceful leave (docs/algorithms.md "Graceful leave"), folded in once under the lock (exchanges in flight
      // then apply their difference form, so the pair sums stay exact).
      await this.lock.run(async () => {
        const x = new Float32Array(await this.params())
        const rb = this.robust
        if (rb) for (const h of hs) clippedPairwiseMove(x, x, x, h.x, h.share, rb.radius(h.from, x))
        else foldHandovers(x, hs)
        await this.write(x)
      })
    }
    // docs/algorithms.md "AD-PSGD pairwise averaging": the gradient is taken at a possibly stale x̂ while the gossip runs beside it (the
    // paper's separate computation and communication threads): the exchange's snapshot and its
    // difference update x += (s_B − s_A)/2 go through the lock, so whichever lands first, both
    // the averaging and the gradient step below are kept. The step never waits for the exchange:
    // a partner answers only between its own steps (a wasm gradient holds its thread), so
    // waiting cost up to one partner step per step (a 2-peer cnn swarm: 27–48 % of its steps/s,
    // bench/overhead.ts). At most one exchange is in flight: exchange() returns false at once
    // while the `busy` token is held (by the previous one, or by serving a partner).
    const targets = activeTargets(this.ctx, mesh.membership())
    if (targets.length > 0) {
      const partner = targets[this.rng.int(targets.length)]
      mesh.want([partner])
      // Nobody awaits it, so a failure is logged here rather than left unhandled.
      void this.exchange(partner).then((ok) => {
        if (ok) this.exchanged++
      }, (err) => this.ctx.log('ad-psgd/exchange-error', { partner, error: String(err) }))
    }
    const g = await compute.gradient()
    // What this peer initiated and completed since its last report (an exchange that is still
    // running is reported by the step during which it ends).
    const communicated = this.exchanged > 0
    this.exchanged = 0
    if (!allFinite(g.grad)) throw new Error('ad-psgd: non-finite gradient')
    await this.lock.run(async () => {
      const x = new Float32Array(await this.params())
      const wd = config.weightDecay
      const beta = config.momentum
      if (beta > 0) {
        const m = (this.momentum ??= new Float32Array(this.d))
        for (let k = 0; k < this.d; k++) {
          m[k] = beta * m[k] + g.grad[k] + wd * x[k]
          x[k] -= lr * m[k]
        }
      } else {
        for (let k = 0; k < this.d; k++) x[k] -= lr * (g.grad[k] + wd * x[k])
      }
      await this.write(x)
    })
    this.stepCount++
    mesh.clock.advance(mesh.clock.value + 1)
    const report: StepReport = {
      step: this.stepCount, globalStep: mesh.clock.value, loss: g.loss, samples: g.samples, lr,
      communicated, contributors: communicated ? 1 : 0, consensus: this.consensus,
    }
    this.consensus = undefined
    return report
  }

  async evalParams(): Promise<Float32Array> {
    return new Float32Array(await this.params())
  }

  /**
   * Lets an exchange in flight finish and its commit be confirmed (each bounded by a deadline) so
   * the partner is not left waiting or half-averaged.
   */
  async leave(): Promise<void> {
    await this.inFlight.catch(() => undefined)
    await Promise.allSettled([...this.confirming])
    // docs/algorithms.md "Graceful leave": then the model goes to the ring neighbours once (after the exchanges, so it is final).
    const { x } = await this.snapshot()
    await handOverModel(this.ctx, x, leaveTargets(this.ctx))
    this.dispose()
  }

  dispose(): void {
    this.inbox.dispose()
    if (!this.stop.signal.aborted) this.stop.abort(new Error('ad-psgd disposed'))
  }
}

export const adPsgd: AlgorithmFactory = async (ctx) => {
  const inst = new AdPsgd(ctx)
  inst.start()
  await inst.bootstrap()
  return inst
}
