import { z } from 'zod'
import type { TopologyName } from '../config'
import type { VectorArena } from '../math/arena'
import { axpy, isValidVector, mixInto, sqDist } from '../math/vector'
import { lrAt } from '../schedule'
import type { MixingWeights, NeighborSets } from '../topology'
import { foldMissing, neighbors } from '../topology'
import { trimmedMean } from '../robust/trimmed-mean'
import { acceptClock, deadline, scopedDeadline, type Envelope, type Membership, type PeerId, type ScopedDeadline } from '../transport'
import { allWithin, MAX_WIRE_VALUE } from '../wire/codec'
import { allGatherKind, allReduceTag, LEAVE_KIND, reduceScatterKind, robustGatherKind, STATE_KIND } from './message-kinds'
import type { AlgorithmContext } from './types'

/** Pieces shared by the synchronous algorithms: lr, neighbour exchange, bootstrap (docs/algorithms.md "Membership, deadlines and churn"). */

export function lrFor(ctx: AlgorithmContext, t: number): number {
  const c = ctx.config
  return lrAt(c.schedule, c.lr, t, c.totalSteps)
}

/**
 * A named deadline that also aborts when the roster is one `reason` objects to: it returns the
 * abort reason, or undefined to keep waiting. It judges the current roster at once
 * (`changed` false), then every change. `done()` releases the timer and the subscription.
 */
export function rosterDeadline(
  ctx: AlgorithmContext, name: string, ms: number, parent: AbortSignal,
  reason: (m: Membership, changed: boolean) => unknown,
): ScopedDeadline {
  const change = new AbortController()
  const dl = scopedDeadline(name, ms, parent, change.signal)
  const judge = (m: Membership, changed: boolean) => {
    const why = reason(m, changed)
    if (why !== undefined) change.abort(why)
  }
  const unsub = ctx.mesh.onMembership((m) => judge(m, true))
  judge(ctx.mesh.membership(), false)
  return {
    signal: dl.signal,
    done: () => {
      unsub()
      dl.done()
    },
  }
}

export interface ExchangeResult {
  /** Valid vectors received in time, by sender. */
  received: Map<PeerId, Float32Array>
  meta: Map<PeerId, Readonly<Record<string, unknown>> | undefined>
  /** Expected senders whose vector did not arrive (or was rejected). */
  missing: PeerId[]
  /**
   * The round this exchange ended at: the requested one, or a later one when a neighbour was
   * ahead (we joined late or fell behind). The caller continues from here, so neighbours
   * re-align within one step instead of folding each other out forever.
   */
  round: number
}

/**
 * Neighbour exchange (docs/algorithms.md "Neighbour exchange"; docs/algorithms.md "Deadlines and folding of missing neighbours"): send one vector to `sendTo`, collect one from each of
 * `receiveFrom` until the step deadline. A neighbour that leaves the roster stops the wait for
 * it at once; payloads of the wrong length or with NaN/Inf are rejected and counted. After
 * `suspectAfterMisses` consecutive misses a neighbour is reported to the mesh.
 */
export class NeighborExchange {
  private readonly misses = new Map<PeerId, number>()
  rejected = 0
  constructor(private readonly ctx: AlgorithmContext) {}

  async exchange(
    kind: string, round: number, vec: Float32Array, sets: NeighborSets,
    opts: { length?: number; meta?: Record<string, unknown>; benignLengths?: readonly number[] } = {},
  ): Promise<ExchangeResult> {
    const { mesh, config, signal } = this.ctx
    const expected = opts.length ?? vec.length
    const dl = scopedDeadline(`${kind}#${round}`, config.stepDeadlineMs, signal)
    mesh.want([...new Set([...sets.sendTo, ...sets.receiveFrom])])
    /** Our vector as the message of round r (the exchange's round, or a later one to re-align). */
    const messageOf = (r: number) => ({ kind, round: r, data: vec, ...(opts.meta ? { meta: opts.meta } : {}) })
    for (const p of sets.sendTo) {
      mesh.send(p, messageOf(round), dl.signal).catch(() => {
        // Peer gone or link down: it will fold our weight on its side (docs/algorithms.md "Deadlines and folding of missing neighbours").
      })
    }
    const perPeer = new Map<PeerId, AbortController>()
    for (const p of sets.receiveFrom) perPeer.set(p, new AbortController())
    let epoch = mesh.membership().epoch
    const off = mesh.onMembership((m) => {
      for (const [p, c] of perPeer) if (!m.peers.includes(p)) c.abort()
      if (m.epoch === epoch) return
      epoch = m.epoch
      // A roster change elsewhere bumps the epoch, and the mailboxes drop what is still in flight
      // from the old one as stale (docs/algorithms.md "Message tagging and staleness"): our vector may never arrive, theirs neither, and both
      // sides would wait out the deadline. Send ours again under the new epoch to the neighbours
      // still here; they do the same, and a copy that did arrive is dropped as a duplicate.
      for (const p of sets.sendTo) {
        if (!m.peers.includes(p)) continue
        mesh.send(p, messageOf(round), dl.signal).catch(() => {})
      }
    })
    for (const [p, c] of perPeer) if (!mesh.membership().peers.includes(p)) c.abort()
    const received = new Map<PeerId, Float32Array>()
    const meta = new Map<PeerId, Readonly<Record<string, unknown>> | undefined>()
    let ahead = round
    try {
      await Promise.all(sets.receiveFrom.map(async (p) => {
        let e: Envelope
        try {
          // Two or more rounds ahead means the neighbour went on without us (we joined late or
          // stalled): its newest model is what counts, not the stale ones still buffered.
          // (One round ahead is normal lock-step skew: then the exact round is used.)
          e = (await takeNewestBuffered(mesh, kind, p, round + 2)) ??
            // A neighbour's later round is its current model: take it rather than wait for a
            // round it has already left (see `round` in ExchangeResult).
            await mesh.receive({ kind, from: p, where: (x) => x.round >= round }, AbortSignal.any([dl.signal, perPeer.get(p)!.signal]))
        } catch {
          return
        }
        if (!this.valid(e, round, expected, opts.benignLengths)) return
        // Only a valid message may move our round or clock: a rejected one proves nothing about the sender.
        acceptClock(mesh, e)
        if (e.round > ahead) ahead = e.round
        received.set(p, e.data)
        meta.set(p, e.meta)
      }))
    } finally {
      off()
      dl.done()
    }
    const missing = sets.receiveFrom.filter((p) => !received.has(p))
    this.countMisses(kind, sets.receiveFrom, received)
    if (ahead > round) {
      // We were behind: neighbours at `ahead` are waiting for our vector of that round. Send the
      // one we have under their round number so they need not fold us out.
      this.ctx.log('realign', { kind, from: round, to: ahead })
      for (const p of sets.sendTo) {
        mesh.send(p, messageOf(ahead), deadline(`${kind}#${ahead}/realign`, config.stepDeadlineMs, signal)).catch(() => {})
      }
    }
    // Anything older than this round is now useless: keep the mailbox bounded.
    mesh.discard({ kind, where: (x) => x.round < ahead })
    return { received, meta, missing, round: ahead }
  }

  /**
   * Whether `e` carries `expected` finite values within ±MAX_WIRE_VALUE, for a round no further
   * than the progress clock believes (a round is the sender's step: it moves ours); a rejected
   * one is counted and logged under the exchange's `round`.
   */
  private valid(e: Envelope, round: number, expected: number, benignLengths: readonly number[] | undefined): e is Envelope & { data: Float32Array } {
    const inRange = e.round <= this.ctx.mesh.clock.ceiling()
    if (e.data && e.data.length === expected && inRange && allWithin(e.data)) return true
    this.rejected++
    const why = !e.data ? 'no payload' : e.data.length !== expected ? `length ${e.data.length}, expected ${expected}`
      : !inRange ? `round ${e.round} beyond the clock bound` : 'NaN/Inf or a value beyond ±2^100 in payload'
    this.ctx.log('rejected', { from: e.from, kind: e.kind, round, why })
    // Counted by the mesh like a bad frame, so the peer is reported after repeated poison
    // instead of only after missed deadlines.
    if (!e.data || !benignLengths?.includes(e.data.length) || !inRange || !allWithin(e.data)) this.ctx.mesh.rejectFrom?.(e.from, `${e.kind}: ${why}`)
    return false
  }

  /** A neighbour's miss count resets when its vector arrives; `suspectAfterMisses` in a row report it. */
  private countMisses(kind: string, receiveFrom: readonly PeerId[], received: ReadonlyMap<PeerId, Float32Array>): void {
    const { mesh, config } = this.ctx
    for (const p of receiveFrom) {
      if (received.has(p)) this.misses.set(p, 0)
      else {
        const k = (this.misses.get(p) ?? 0) + 1
        this.misses.set(p, k)
        // Again at every multiple: the server lets suspicions expire, so a peer that stays dead
        // keeps being reported until the evidence (or the server's own observation) suffices.
        if (k % config.suspectAfterMisses === 0 && mesh.membership().peers.includes(p))
          mesh.reportSuspect(p, `missed ${k} consecutive '${kind}' deadlines`)
      }
    }
  }
}

const ALREADY_ABORTED = AbortSignal.abort()

/**
 * The newest buffered `kind` message from `from` with round ≥ `minRound`, consuming (dropping)
 * the older ones it passes; undefined when none is buffered. Never waits: the receive gets an
 * already-aborted signal, so the mailbox answers from its buffer or rejects at once.
 */
async function takeNewestBuffered(mesh: AlgorithmContext['mesh'], kind: string, from: PeerId, minRound: number): Promise<Envelope | undefined> {
  let newest: Envelope | undefined
  for (;;) {
    const floor = newest ? newest.round + 1 : minRound
    try {
      newest = await mesh.receive({ kind, from, where: (x) => x.round >= floor }, ALREADY_ABORTED)
    } catch {
      return newest
    }
  }
}

/** out = w_self·own + Σ w_j·x_j over received, missing weight folded onto self (docs/algorithms.md "Deadlines and folding of missing neighbours"). */
export function mixReceived(
  out: Float32Array, own: Float32Array, weights: MixingWeights, res: ExchangeResult, arena?: VectorArena,
): { folded: number; contributors: number } {
  const w = foldMissing(weights, res.missing)
  // One fused pass (mixInto, or the arena's SIMD kernels when the caller keeps its vectors in
  // one) instead of one pass per neighbour (bench/mixing.ts).
  const ws: number[] = [w.self]
  const vs: Float32Array[] = [own]
  for (const [p, wp] of w.in) {
    const v = res.received.get(p)
    if (v) {
      ws.push(wp)
      vs.push(v)
    }
  }
  if (arena) arena.mix(out, ws, vs)
  else mixInto(out, ws, vs)
  return { folded: res.missing.length, contributors: res.received.size }
}

/** docs/algorithms.md "Consensus distance" proxy: mean ‖x − x_j‖² over received neighbour vectors (undefined if none). */
export function consensusProxy(
  x: Float32Array, received: ReadonlyMap<PeerId, Float32Array>, arena?: VectorArena,
): number | undefined {
  if (received.size === 0) return undefined
  let s = 0
  for (const v of received.values()) s += arena ? arena.sqDist(x, v) : sqDist(x, v)
  return s / received.size
}

// ---------------------------------------------------------------------------------------------
// Joiner bootstrap (docs/algorithms.md "Joining a running swarm")

export interface PeerState {
  params: Float32Array
  opt: Float32Array[]
  step: number
  globalStep: number
  /** Algorithm extras (local-sgd: round, h, local count). */
  extra: Record<string, number>
}

const counter = z.number().finite().min(0)
const stateMetaSchema = z.object({
  ready: z.boolean(),
  step: counter.int().optional(),
  globalStep: counter.optional(),
  optLens: z.array(z.number().int().min(0)).optional(),
  extra: z.record(z.string(), counter).optional(),
})

/**
 * Why a state answer's counters cannot be believed, or null. A peer's step and global step are
 * at most what the progress clock believes a peer can be at (ProgressClock.ceiling: the room's
 * progress plus slack); the algorithm's extras are rounds and local steps (at most the global
 * step + 1) or a round length H (at most the run's totalSteps). The algorithm checks how they
 * fit together (local-sgd: localCnt ≤ H).
 */
function implausibleCounters(step: number, globalStep: number, extra: Record<string, number>, ceiling: number, totalSteps: number): string | null {
  if (step > ceiling) return `step ${step}`
  if (globalStep > ceiling) return `globalStep ${globalStep}`
  for (const [k, v] of Object.entries(extra)) if (v > Math.max(ceiling + 1, totalSteps)) return `${k} ${v}`
  return null
}

/**
 * Background responder: answers 'state/request' with this peer's snapshot (or ready:false
 * while it is still bootstrapping itself). Returns a stop function.
 */
export function startStateResponder(
  ctx: AlgorithmContext, snapshot: () => Promise<PeerState | null>,
): () => void {
  const stop = new AbortController()
  const signal = AbortSignal.any([ctx.signal, stop.signal])
  void (async () => {
    while (!signal.aborted) {
      let req: Envelope
      try {
        req = await ctx.mesh.receive({ kind: STATE_KIND.request }, signal)
      } catch {
        return
      }
      try {
        const s = await snapshot()
        const dl = scopedDeadline('state/respond', ctx.config.stepDeadlineMs, signal)
        const msg = s
          ? {
              kind: STATE_KIND.response, round: req.round,
              data: concatState(s),
              meta: { ready: true, step: s.step, globalStep: s.globalStep, optLens: s.opt.map((o) => o.length), extra: s.extra },
            }
          : { kind: STATE_KIND.response, round: req.round, meta: { ready: false } }
        await ctx.mesh.send(req.from, msg, dl.signal).catch(() => {})
        dl.done()
      } catch (e) {
        ctx.log('state/respond-failed', { error: String(e) })
      }
    }
  })()
  return () => stop.abort()
}

function concatState(s: PeerState): Float32Array {
  const n = s.params.length + s.opt.reduce((a, o) => a + o.length, 0)
  const out = new Float32Array(n)
  out.set(s.params, 0)
  let o = s.params.length
  for (const v of s.opt) {
    out.set(v, o)
    o += v.length
  }
  return out
}

let requestNonce = 0

/**
 * Asks `targets` for their state and returns the valid ready answers (in `targets` order).
 * Waits until every target answered or the step deadline passed; an empty result means
 * "start from your own init". An answer with values beyond ±MAX_WIRE_VALUE, or with counters
 * beyond the progress clock's ceiling, is dropped and counted against its sender (docs/security.md);
 * a joiner adopting counters takes their median over the answers (bootstrapCounters).
 */
export async function requestState(ctx: AlgorithmContext, targets: readonly PeerId[]): Promise<PeerState[]> {
  if (targets.length === 0) return []
  const { mesh, compute } = ctx
  // Unique per request so duplicate suppression never swallows a retry.
  const round = mesh.membership().epoch * 1_000_000 + (requestNonce++ % 1_000_000)
  const dl = scopedDeadline('state/bootstrap', ctx.config.stepDeadlineMs, ctx.signal)
  mesh.want(targets)
  const out = new Map<PeerId, PeerState>()
  try {
    await Promise.all(targets.map(async (p) => {
      try {
        await mesh.send(p, { kind: STATE_KIND.request, round }, dl.signal)
        const e = await mesh.receive({ kind: STATE_KIND.response, round, from: p }, dl.signal)
        const meta = stateMetaSchema.safeParse(e.meta)
        if (!meta.success) return mesh.rejectFrom?.(p, `${STATE_KIND.response}: invalid meta`)
        if (!meta.data.ready) return
        const d = compute.paramCount
        const lens = meta.data.optLens ?? []
        if (!e.data || e.data.length !== d + lens.reduce((a, b) => a + b, 0) || !allWithin(e.data))
          return mesh.rejectFrom?.(p, `${STATE_KIND.response}: wrong length, NaN/Inf or a value beyond ±2^100`)
        const step = meta.data.step ?? 0
        const globalStep = meta.data.globalStep ?? 0
        const extra = meta.data.extra ?? {}
        const bad = implausibleCounters(step, globalStep, extra, mesh.clock.ceiling(), ctx.config.totalSteps)
        if (bad) {
          ctx.log('state/implausible', { from: p, counter: bad })
          return mesh.rejectFrom?.(p, `${STATE_KIND.response}: ${bad} beyond the clock bound`)
        }
        const opt: Float32Array[] = []
        let o = d
        for (const l of lens) {
          opt.push(e.data.slice(o, o + l))
          o += l
        }
        out.set(p, { params: e.data.slice(0, d), opt, step, globalStep, extra })
      } catch {
        // Deadline or peer gone: that target simply does not contribute.
      }
    }))
  } finally {
    dl.done()
  }
  return targets.filter((p) => out.has(p)).map((p) => out.get(p)!)
}

/** The lower median of `xs` (empty: undefined): one outlier on either side cannot move it, and of two the smaller wins. */
export function lowerMedian(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[(sorted.length - 1) >> 1]
}

/**
 * The lower-median state in the order `compare` (undefined when empty): where a joiner must take
 * one neighbour's counters together (a position, an exact x with its step), it takes the middle
 * one, not the furthest, so one neighbour claiming to be far ahead is never chosen while more
 * honest ones answered (and of two, the one less far ahead).
 */
export function medianState(states: readonly PeerState[], compare: (a: PeerState, b: PeerState) => number): PeerState | undefined {
  if (states.length === 0) return undefined
  const sorted = [...states].sort(compare)
  return sorted[(sorted.length - 1) >> 1]
}

/**
 * The counters a joiner adopts from several answers: step and global step each their lower
 * median over `states`, both already bounded by the clock's ceiling (requestState).
 */
export function bootstrapCounters(states: readonly PeerState[]): { step: number; globalStep: number } | undefined {
  if (states.length === 0) return undefined
  return { step: lowerMedian(states.map((s) => s.step))!, globalStep: lowerMedian(states.map((s) => s.globalStep))! }
}

/** Element-wise average of the states' parameters. */
export function averageParams(states: readonly PeerState[]): Float32Array {
  const out = new Float32Array(states[0].params.length)
  for (const s of states) axpy(out, 1 / states.length, s.params)
  return out
}

/**
 * The roster-order neighbours on either side (the ring all-reduce's only partners, and so the
 * only links the mesh keeps for the all-reduce family): where that family asks for state, since
 * every member holds the same round and, for SSGD, the same x and m.
 */
export function ringNeighbours(ctx: AlgorithmContext): PeerId[] {
  return [...neighbors('ring', ctx.mesh.membership().peers, ctx.mesh.self).sendTo]
}

/** Other peers in the current roster. */
export function others(ctx: AlgorithmContext): PeerId[] {
  return ctx.mesh.membership().peers.filter((p) => p !== ctx.mesh.self)
}

// ---------------------------------------------------------------------------------------------
// Ring all-reduce (docs/algorithms.md "Ring all-reduce"): reduce-scatter then all-gather, n−1 hops each, 2(n−1)/n·d per peer.

/** The most peers a ring all-reduce spans (a room's roster cap, signaling-server/rooms.ts MAX_PEERS_PER_ROOM). */
export const MAX_RING_PEERS = 256
/**
 * The largest magnitude one member's contribution may have: MAX_WIRE_VALUE / MAX_RING_PEERS
 * (2^92 ≈ 5e27), so a full sum of contributions stays within the wire bound and far from
 * float32 overflow.
 */
export const MAX_CONTRIBUTION = MAX_WIRE_VALUE / MAX_RING_PEERS

/**
 * Bound on a chunk received at a hop that sums `contributions` members' values: the sender can
 * only have added its own to what it received, so a partial sum is at most `contributions` ×
 * MAX_CONTRIBUTION. The first hop whose chunk breaks its bound is the liar's, never an honest
 * forwarder's (a single bound for every hop would blame the peer after two large contributions).
 */
export function chunkBound(contributions: number): number {
  return Math.min(MAX_WIRE_VALUE, contributions * MAX_CONTRIBUTION)
}

/**
 * Sums `vec` over `roster` (in place: on success `vec` holds the sum, bit-identical on every
 * member). Rejects on a deadline, a departure, or a rejected chunk; the caller retries with the
 * new roster. `tag` must be the same on all members for this attempt (e.g. step and epoch).
 */
export async function ringAllReduceSum(
  ctx: AlgorithmContext, tag: string, round: number, vec: Float32Array, roster: readonly PeerId[], signal: AbortSignal,
  received?: Map<string, Float32Array>,
): Promise<void> {
  const n = roster.length
  const r = roster.indexOf(ctx.mesh.self)
  if (r < 0) throw new Error('ringAllReduce: self not in roster')
  if (n <= 1) return
  const right = roster[(r + 1) % n]
  const left = roster[(r - 1 + n) % n]
  ctx.mesh.want([left, right])
  const d = vec.length
  const bounds = (c: number): [number, number] => [Math.floor((c * d) / n), Math.floor(((c + 1) * d) / n)]
  const mod = (a: number) => ((a % n) + n) % n
  /** Chunk c of `kind`, a sum of `contributions` members' values (see chunkBound). */
  const recvChunk = async (kind: string, c: number, contributions: number): Promise<Float32Array> => {
    // A retry of the same attempt (same tag, round, roster and input) reuses what it already
    // consumed: the mesh drops the neighbour's re-sent copy as a duplicate.
    const kept = received?.get(kind)
    if (kept) return kept
    const e = await ctx.mesh.receive({ kind, round, from: left }, signal)
    const [a, b] = bounds(c)
    if (!e.data || e.data.length !== b - a || !allWithin(e.data, chunkBound(contributions))) {
      ctx.mesh.rejectFrom?.(left, `${kind}: bad all-reduce chunk (length, NaN/Inf or beyond the bound of ${contributions} contributions)`)
      throw new Error(`ringAllReduce: bad chunk from ${left}`)
    }
    acceptClock(ctx.mesh, e)
    received?.set(kind, e.data)
    return e.data
  }
  for (let s = 0; s < n - 1; s++) {
    const kind = reduceScatterKind(tag, s)
    const [a, b] = bounds(mod(r - s))
    await ctx.mesh.send(right, { kind, round, data: vec.subarray(a, b) }, signal)
    const c = mod(r - s - 1)
    // At hop s the left neighbour's partial sum holds s + 1 members' values.
    const got = await recvChunk(kind, c, s + 1)
    const [ca] = bounds(c)
    for (let i = 0; i < got.length; i++) vec[ca + i] += got[i]
  }
  for (let s = 0; s < n - 1; s++) {
    const kind = allGatherKind(tag, s)
    const [a, b] = bounds(mod(r + 1 - s))
    // The owner of a reduced chunk first rounds it to its wire image: under fp16/int8 the others
    // only ever see the decoded values, and replicas must stay identical (docs/algorithms.md "SSGD under churn"). Forwarded
    // chunks are already wire images: re-encoding them is exact for fp16; for int8 it can move
    // the last bit (the scale's rounding), which ssgd's periodic resync covers.
    if (s === 0) ctx.mesh.wireImage?.(kind, vec.subarray(a, b))
    await ctx.mesh.send(right, { kind, round, data: vec.subarray(a, b) }, signal)
    const c = mod(r - s)
    // A reduced chunk: the sum over all n members.
    const got = await recvChunk(kind, c, n)
    vec.set(got, bounds(c)[0])
  }
}

/**
 * All-reduce with churn handling (docs/algorithms.md "SSGD under churn"): each attempt uses the roster and epoch at its start,
 * is aborted at once by a membership change, and bounded by the step deadline; then it is
 * retried with the new roster. Returns null when it gave up (caller falls back).
 *
 * Budget. `attempts` counts attempts that ran out their deadline in an unchanged roster. An
 * attempt cut short by a membership change is restarted without using one, as long as the round
 * is within `attempts` deadlines of wall time in all: a swarm that forms (a dozen volunteers
 * arriving within a second, each a new epoch) used to exhaust the attempts in a second, so its
 * first peers gave up round 0 and moved on alone while the arrivals waited in round 0.
 *
 * `build` must return the same vector on every attempt: a retry within the same epoch reuses
 * the chunks the failed attempt already received (their re-sent copies are duplicates that the
 * mesh drops), so a round whose first attempt timed out half-way can still complete.
 * `retryAfterTimeout` is asked before a same-epoch retry; false gives up at once (local SGD:
 * another member is already in a later round, so this round cannot complete).
 */
export async function allReduceWithRetry(
  ctx: AlgorithmContext, name: string, round: number, build: () => Float32Array, opts: CollectiveOptions = {},
): Promise<{ sum: Float32Array; members: number } | null> {
  return collectiveWithRetry(ctx, name, round, build, opts, async (tag, vec, roster, signal, received) => {
    await ringAllReduceSum(ctx, tag, round, vec, roster, signal, received)
    return { sum: vec, members: roster.length }
  })
}

/** Options of allReduceWithRetry and allGatherWithRetry (see allReduceWithRetry). */
export interface CollectiveOptions {
  attempts?: number
  received?: Map<string, Float32Array>
  retryAfterTimeout?: () => Promise<boolean>
}

/**
 * The robust mode's replacement for allReduceWithRetry (`robust: 'on'`, docs/algorithms.md "Robust
 * aggregation"): every member's vector, in roster order (this peer's own as its wire image), with
 * the same attempts, deadlines, churn restarts and give-up rules. The caller combines them
 * (shared/robust/centered-clip.ts, trimmed-mean.ts). An attempt needs every member's vector, like the ring: a
 * member that does not send in time fails the attempt rather than being left out, so all members
 * of a completed attempt hold the same set and compute the same result.
 */
export async function allGatherWithRetry(
  ctx: AlgorithmContext, name: string, round: number, build: () => Float32Array, opts: CollectiveOptions = {},
): Promise<{ vectors: Float32Array[]; members: number; roster: readonly PeerId[] } | null> {
  return collectiveWithRetry(ctx, name, round, build, opts, async (tag, vec, roster, signal, received) => ({
    vectors: await allGather(ctx, tag, round, vec, roster, signal, received),
    members: roster.length,
    roster,
  }))
}

/**
 * Sends `vec` to every other member of `roster` and receives theirs (kind `<tag>/all`; the mesh
 * frames large vectors as it does the ring's chunks). Returns the vectors in roster order, own
 * included: `vec` rounded to its wire image first, so every member combines the same values.
 * Each received vector is checked like a ring chunk of one contribution (length, finite, within
 * MAX_CONTRIBUTION, so a combiner summing up to MAX_RING_PEERS of them stays within the wire
 * bound); a bad one is reported (rejectFrom) and fails the attempt. Cost: (n − 1)·d sent and
 * received per member, against the ring's 2(n − 1)/n·d.
 */
export async function allGather(
  ctx: AlgorithmContext, tag: string, round: number, vec: Float32Array, roster: readonly PeerId[], signal: AbortSignal,
  received?: Map<string, Float32Array>,
): Promise<Float32Array[]> {
  const self = ctx.mesh.self
  if (!roster.includes(self)) throw new Error('allGather: self not in roster')
  const peers = roster.filter((p) => p !== self)
  const kind = robustGatherKind(tag)
  ctx.mesh.wireImage?.(kind, vec)
  if (peers.length === 0) return [vec]
  ctx.mesh.want(peers)
  const recv = async (from: PeerId): Promise<Float32Array> => {
    const key = `${kind}|${from}`
    // A retry of the same attempt reuses what it already consumed (the re-sent copy is a duplicate the mesh drops).
    const kept = received?.get(key)
    if (kept) return kept
    const e = await ctx.mesh.receive({ kind, round, from }, signal)
    if (!e.data || e.data.length !== vec.length || !allWithin(e.data, MAX_CONTRIBUTION)) {
      ctx.mesh.rejectFrom?.(from, `${kind}: bad all-gather vector (length, NaN/Inf or beyond ${MAX_CONTRIBUTION})`)
      throw new Error(`allGather: bad vector from ${from}`)
    }
    acceptClock(ctx.mesh, e)
    received?.set(key, e.data)
    return e.data
  }
  const [, got] = await Promise.all([
    Promise.all(peers.map((p) => ctx.mesh.send(p, { kind, round, data: vec }, signal))),
    Promise.all(peers.map(recv)),
  ])
  const byPeer = new Map(peers.map((p, i) => [p, got[i]]))
  return roster.map((p) => (p === self ? vec : byPeer.get(p)!))
}

/**
 * Robust mode of the averaging algorithms (local-sgd, local-adamw, lap-sgd; `robust: 'on'`,
 * docs/algorithms.md "Robust aggregation"): their sample-weighted ring sum of [c·v, c] becomes an
 * all-gather (allGatherWithRetry) of the members' unweighted [v, c] vectors (v of length `len`),
 * combined here by the coordinate-wise trimmed mean (shared/robust/trimmed-mean.ts) of the
 * contributors (c > 0; a joiner's weight 0 only receives). Weighting by the claimed sample count
 * would let one member buy a larger pull, so the robust mean is unweighted. The result has the
 * ring sum's shape, [mean · Σ, Σ] with Σ the contributor count, so the caller's division by the
 * last slot gives the mean back. Null when the gather failed or nobody contributed.
 */
export function robustMean(
  res: { vectors: Float32Array[]; members: number } | null, len: number,
): { sum: Float32Array; members: number } | null {
  if (!res) return null
  const contributors = res.vectors.filter((v) => v[len] > 0)
  if (contributors.length === 0) return null
  const sum = new Float32Array(len + 1)
  trimmedMean(contributors, undefined, 0, len, sum)
  const total = contributors.length
  for (let i = 0; i < len; i++) sum[i] *= total
  sum[len] = total
  return { sum, members: res.members }
}

/** The retry loop of allReduceWithRetry around one collective `run` (the ring sum or the robust all-gather). */
async function collectiveWithRetry<T>(
  ctx: AlgorithmContext, name: string, round: number, build: () => Float32Array, opts: CollectiveOptions,
  run: (tag: string, vec: Float32Array, roster: readonly PeerId[], signal: AbortSignal, received: Map<string, Float32Array>) => Promise<T>,
): Promise<T | null> {
  const attempts = opts.attempts ?? 3
  const budgetEnd = ctx.now() + attempts * ctx.config.stepDeadlineMs
  // A caller that retries the same round later (SSGD's hold) passes its own map to keep it.
  const received = opts.received ?? new Map<string, Float32Array>()
  let timedOut = 0
  for (let a = 0; timedOut < attempts && !ctx.signal.aborted; a++) {
    const m = ctx.mesh.membership()
    if (!m.peers.includes(ctx.mesh.self)) return null
    // Restarts after a membership change share the round's budget, which only ever cuts the
    // last attempt short: each deadline is the step deadline or what is left, if less.
    const left = budgetEnd - ctx.now()
    if (left < 1) break
    const vec = build()
    const change = new AbortController()
    const off = ctx.mesh.onMembership((x) => {
      if (x.epoch !== m.epoch) change.abort()
    })
    const dl = scopedDeadline(`${name}#${round}`, Math.min(ctx.config.stepDeadlineMs, Math.ceil(left)), ctx.signal, change.signal)
    let retry = true
    try {
      return await run(allReduceTag(name, m.epoch), vec, m.peers, dl.signal, received)
    } catch (e) {
      const rosterChanged = change.signal.aborted || ctx.mesh.membership().epoch !== m.epoch
      ctx.log(`${name}/retry`, { round, attempt: a, epoch: m.epoch, error: String(e), ...(rosterChanged ? { rosterChanged } : {}) })
      if (!rosterChanged && !ctx.signal.aborted) {
        timedOut++
        if (timedOut < attempts && opts.retryAfterTimeout) retry = await opts.retryAfterTimeout().catch(() => true)
      }
    } finally {
      off()
      dl.done()
    }
    if (!retry) {
      ctx.log(`${name}/give-up`, { round, reason: 'a member is in a later round' })
      return null
    }
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// Graceful leave (docs/algorithms.md "Graceful leave"): the leaver hands its model to its topology neighbours once; each folds
// it in once at its next step. Nobody ever waits for a hand-over.

/**
 * Bound on the leaver's wait for acks. The session gives `leave()` 1.5 s in all
 * (client/session/swarm-session.ts) and a closing tab (pagehide) may give less, so this stays
 * below both, and below the step deadline when that is shorter.
 */
export const LEAVE_HANDOVER_MS = 1000

/**
 * Largest share of a leaver's model a receiver takes. The rule below only exceeds it for a leaf
 * (k = 1) of a bigger graph, where (n−1)/n would almost replace the receiver's own model.
 */
export const MAX_LEAVE_SHARE = 0.5

const leaveMetaSchema = z.object({ n: z.number().int().min(2), k: z.number().int().min(1) })

/**
 * Share s of the leaver's model each of its k receivers folds in: x_j ← x_j + s·(x_L − x_j).
 * Over the remaining n−1 peers the sum moves by s·k·(x_L − x̄_N) (x̄_N: the receivers' mean);
 * s = (n−1)/(n·k) makes the unweighted network mean exactly the one before the leave whenever
 * x̄_N equals the mean of the other peers: ring (k = 2) about ½, which is "average it in";
 * clique (k = n−1) 1/n, exact always. An abrupt leave instead moves the mean by (x̄ − x_L)/(n−1).
 */
export function leaveShare(n: number, k: number): number {
  return Math.min(MAX_LEAVE_SHARE, (n - 1) / (n * k))
}

/**
 * The leaver's topology neighbours (both directions of a directed graph) at `step`. The
 * all-reduce family passes its link topology, 'ring' (descriptors.ts linkTopology): its group is
 * a clique, but the ring all-reduce (and so the mesh's links) only ever pairs roster neighbours,
 * and the next averaging spreads what they fold in to everyone anyway.
 */
export function leaveTargets(ctx: AlgorithmContext, step = 0, topology: TopologyName = ctx.config.topology): PeerId[] {
  const m = ctx.mesh.membership()
  const nb = neighbors(topology, m.peers, ctx.mesh.self, step, m.roles.ps)
  return [...new Set([...nb.sendTo, ...nb.receiveFrom])]
}

let leaveNonce = 0

/**
 * Leaver side: sends `x` to `targets` once and waits (at most LEAVE_HANDOVER_MS) for their acks,
 * so the hand-over is consumed before this peer's departure bumps the epoch (buffered messages
 * of an old epoch are dropped as stale, docs/algorithms.md "Message tagging and staleness"). Returns how many acked; never throws.
 */
export async function handOverModel(ctx: AlgorithmContext, x: Float32Array, targets: readonly PeerId[]): Promise<number> {
  const { mesh } = ctx
  if (targets.length === 0 || !isValidVector(x, ctx.compute.paramCount)) return 0
  const m = mesh.membership()
  const round = m.epoch * 1_000_000 + (leaveNonce++ % 1_000_000)
  const meta = { n: m.peers.length, k: targets.length }
  const dl = scopedDeadline('leave/handover', Math.min(LEAVE_HANDOVER_MS, ctx.config.stepDeadlineMs), ctx.signal)
  const data = x.slice()
  mesh.want(targets)
  const acks = await Promise.allSettled(targets.map(async (p) => {
    await mesh.send(p, { kind: LEAVE_KIND.model, round, data, meta }, dl.signal)
    await mesh.receive({ kind: LEAVE_KIND.ack, round, from: p }, dl.signal)
  }))
  dl.done()
  const ok = acks.filter((a) => a.status === 'fulfilled').length
  ctx.log('leave/handover', { to: targets.length, acked: ok, share: leaveShare(meta.n, meta.k) })
  return ok
}

export interface LeaveHandover {
  from: PeerId
  x: Float32Array
  share: number
}

/**
 * Receiver side: a background loop that takes every hand-over as it arrives (so none sits in the
 * mailbox until an epoch bump drops it), validates it, acks it and queues it for `take()`. One
 * per sender: a duplicate from the same leaver replaces the queued one, so it is folded once.
 */
export class LeaveInbox {
  private readonly queue = new Map<PeerId, LeaveHandover>()
  private readonly stop = new AbortController()

  constructor(private readonly ctx: AlgorithmContext) {
    void this.loop()
  }

  private async loop(): Promise<void> {
    const { mesh } = this.ctx
    const signal = AbortSignal.any([this.ctx.signal, this.stop.signal])
    while (!signal.aborted) {
      let e: Envelope
      try {
        e = await mesh.receive({ kind: LEAVE_KIND.model }, signal)
      } catch {
        return
      }
      const meta = leaveMetaSchema.safeParse(e.meta)
      if (!meta.success || !isValidVector(e.data, this.ctx.compute.paramCount) || !allWithin(e.data)) {
        mesh.rejectFrom?.(e.from, `${LEAVE_KIND.model}: bad meta, wrong length, NaN/Inf or a value beyond ±2^100`)
        continue
      }
      acceptClock(mesh, e)
      this.queue.set(e.from, { from: e.from, x: e.data, share: leaveShare(meta.data.n, meta.data.k) })
      mesh.send(e.from, { kind: LEAVE_KIND.ack, round: e.round }, deadline('leave/ack', LEAVE_HANDOVER_MS, signal)).catch(() => undefined)
    }
  }

  get size(): number {
    return this.queue.size
  }

  /** The hand-overs received since the last call (each returned once). */
  take(): LeaveHandover[] {
    const out = [...this.queue.values()]
    this.queue.clear()
    return out
  }

  dispose(): void {
    this.stop.abort()
  }
}

/** In place x ← x + s·(x_L − x) for each hand-over; returns whether anything was folded. */
export function foldHandovers(x: Float32Array, hs: readonly LeaveHandover[]): boolean {
  for (const h of hs) for (let i = 0; i < x.length; i++) x[i] += h.share * (h.x[i] - x[i])
  return hs.length > 0
}
