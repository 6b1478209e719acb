import type { AlgorithmInstance, StepReport } from '../../shared/algorithms/types'
import type { RoomConfig } from '../../shared/config'
import { JoinRejectedError, type Credit, type MembershipAnnouncement, type PeerCommand } from '../../shared/protocol/signaling'
import { DeadlineError, isDeadline, sleep, yieldToEventLoop, type Unsubscribe } from '../../shared/transport'
import { ALGORITHM_DESCRIPTORS, ALGORITHM_FACTORIES } from '../../shared/algorithms/index'
import { neighbors } from '../../shared/topology'
import { allFinite } from '../../shared/math/vector'
import { DivergenceDetector, divergenceHint, type Divergence } from '../../shared/divergence'
import { canStep, initialLifecycle, reduce, shownAway, type Effect, type Lifecycle, type LifecycleEvent } from './lifecycle'
import { buildReport, linkConnectivity, RateWindow } from './telemetry'
import { normalizeName } from '../../shared/names'
import { describeEvent, say, type Said } from './wording'
import { roomProgressStep } from './room-progress'
import type {
  RoomProgress, SessionHandle, SessionMesh, SessionOptions, SessionPlatform, SessionSnapshot, SessionStage, SignalingPort, Trainer,
} from './types'

export type { RoomProgress, SessionMesh, SessionOptions, SessionPlatform, SignalingPort, Trainer }
export { describeEvent }

/**
 * The driver of a volunteer's life (docs/architecture.md "The session"). What may happen when is
 * decided by the pure reducer in lifecycle.ts; this class feeds it events (the user, the page,
 * the room, the server) and carries out its effects. One run is a sequence of named phases:
 *   prepare (backend, data, model) → enter the roster → open the mesh → resume → build the
 *   algorithm (it bootstraps from the swarm) → step loop { step ; report ; evaluate ; checkpoint }
 * and a graceful leave hands the model to the neighbours. Everything platform-specific (socket.io,
 * WebRTC, tfjs backend, data loading, Web Workers vs worker_threads) comes through
 * `SessionPlatform`, so a browser tab and a headless Node volunteer run this same code.
 */

/** Peers report at least this often while training ("at least once a second"). */
export const REPORT_INTERVAL_MS = 500
/** Test accuracy is measured at most this often (costs one forward pass over the test subset). */
export const EVAL_INTERVAL_MS = 3000
/**
 * ...and at most this fraction of wall-clock time: a CNN's pass over the test subset takes
 * seconds on wasm, and a fixed 3 s interval made evaluation most of what such a tab did.
 */
export const EVAL_TIME_BUDGET = 0.05
/** The room's writer (membership roles.writer) uploads the model this often, for checkpoints and downloads. */
export const CHECKPOINT_INTERVAL_MS = 20_000
/**
 * How long a graceful leave may take before the session disconnects anyway: an exchange in
 * flight and its confirmation (AD-PSGD: one step deadline each) plus the hand-over itself. A
 * fixed 1.5 s cut AD-PSGD's hand-over off under the default 3 s deadline.
 */
export function leaveBudgetMs(stepDeadlineMs = 3000): number {
  return Math.min(10_000, 2 * stepDeadlineMs + 1000)
}
/** A step slower than this multiple of the room's stepDeadlineMs marks the tab 'stalled' in the UI. */
const STALL_FACTOR = 2
/** How often the training loop refreshes the snapshot (UI and reports read it). */
const SNAPSHOT_INTERVAL_MS = 100
const LOG_LINES = 40
/**
 * How often a training tab re-reads the room's progress (GET /api/rooms/:room) for its progress
 * clock's ceiling (docs/security.md): between two reads the ceiling grows at the server's fastest
 * believable rate, so a longer interval is a looser bound.
 */
export const ROOM_PROGRESS_INTERVAL_MS = 10_000
/** How often a pending joiner repeats 'ready' until the roster includes it. */
const READY_RETRY_MS = 5_000
/** How long a gated loop sleeps before looking again when nothing wakes it. */
const GATE_POLL_MS = 1000

function initialSnapshot(room: string): SessionSnapshot {
  return {
    stage: 'idle', room, self: null, name: null, config: null, run: 0, backend: null, backendReason: '', computeThread: null, capability: [], dataProgress: 0,
    step: 0, globalStep: 0, loss: null, accuracy: null, samplesPerSec: 0, stepsPerSec: 0, samples: 0, credit: null, neighbourNames: {}, screenOn: false, evalMs: 0,
    bytesSent: 0, bytesReceived: 0, neighbors: [], connectivity: null, peers: [], lr: null, h: null, consensus: null, error: null, log: [],
    away: null, diverged: null, faults: { slowFactor: 1, latencyMs: 0 },
  }
}

function hashSeed(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

type Shard = { index: number; count: number; seed: number }

/** A promise and its resolver (Promise.withResolvers, which Node 20 lacks). */
function signalOnce(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

/** Unanswered joins asked again before the session gives up (each waits JOIN_DEADLINE_MS). */
export const JOIN_RETRIES = 3

export class SwarmSession implements SessionHandle {
  private snap: SessionSnapshot
  private listeners = new Set<(s: SessionSnapshot) => void>()
  private stop = new AbortController()
  private runAbort: AbortController | null = null
  private life: Lifecycle = initialLifecycle
  /** Resolved (and replaced) on every lifecycle change: the waits of the loop and of becomeReady. */
  private changed = signalOnce()
  private slowFactor = 1
  private latencyMs = 0
  private membership: MembershipAnnouncement | null = null
  /** Newest announcement seen, even before our join ack arrived. */
  private latestMembership: MembershipAnnouncement | null = null
  private mesh: SessionMesh | null = null
  private instance: AlgorithmInstance | null = null
  private trainer: Trainer | null = null
  /** The room config and shard `trainer` was prepared for (kept across stepping out and in). */
  private trainerFor: string | null = null
  private trainerShard: Shard | null = null
  private loopDone: Promise<void> = Promise.resolve()
  private unsubs: Unsubscribe[] = []
  private lastReport = 0
  /** When the room's progress was last read for the clock (performance.now ms). */
  private lastRoomProgress = 0
  private lastEval = 0
  private lastEvalMs = 0
  private lastCheckpoint = 0
  /** The host rolled back: the next run start loads the room checkpoint whatever the swarm's progress. */
  private restoreRequested = false
  private lastSnapshot = 0
  private rates = new RateWindow()
  /** This run's model diverged (shared/divergence.ts): what and where, for the report and the UI. */
  private localDivergence: Divergence | null = null

  constructor(private readonly platform: SessionPlatform, private readonly opts: SessionOptions) {
    this.snap = { ...initialSnapshot(opts.room), name: normalizeName(opts.name) }
  }

  snapshot(): SessionSnapshot {
    return this.snap
  }

  subscribe(cb: (s: SessionSnapshot) => void): Unsubscribe {
    this.listeners.add(cb)
    cb(this.snap)
    return () => this.listeners.delete(cb)
  }

  /**
   * User pause: the loop stops at the next step boundary and the tab steps out of the roster, so
   * its neighbours stop waiting for it at once instead of missing deadlines until they report it.
   */
  pause(): void {
    this.update({ stage: 'paused' })
    this.dispatch({ type: 'step-out', reason: 'paused' })
  }

  resume(): void {
    this.dispatch({ type: 'step-back', reason: 'paused' })
  }

  /**
   * The tab has been hidden for a while (browser-session.ts waits out a grace period first):
   * browsers throttle hidden tabs to a crawl, so it steps out like a paused one and comes back
   * when visible again (unless the user paused it meanwhile).
   */
  setHidden(hidden: boolean): void {
    this.dispatch(hidden ? { type: 'step-out', reason: 'hidden' } : { type: 'step-back', reason: 'hidden' })
  }

  /** The display name for the next join (a browser tab settles its default before start()). */
  setName(name: string | undefined): void {
    this.update({ name: normalizeName(name) })
  }

  /** The platform kept the screen on (true) or let it go (false); shown on the page. */
  setScreenOn(held: boolean): void {
    if (held !== this.snap.screenOn) this.update({ screenOn: held })
  }

  /** Graceful leave: hand the model to neighbours once, then disconnect. */
  async leave(): Promise<void> {
    if (this.stop.signal.aborted) return
    this.dispatch({ type: 'leave' })
    try {
      await Promise.race([this.instance?.leave(), sleep(leaveBudgetMs(this.membership?.config.stepDeadlineMs))])
    } catch {
      /* best effort */
    }
    this.dispatch({ type: 'left' })
  }

  /** Starts the session; resolves when joined and the first run has started (or failed). */
  async start(): Promise<void> {
    try {
      this.dispatch({ type: 'start' })
      this.update({ stage: 'loading' })
      const backend = await this.platform.selectBackend(this.opts.backend)
      this.update({ backend: backend.backend, backendReason: backend.reason, capability: backend.capability ?? [] })
      this.log(say.backend(backend.backend, backend.reason))
      this.update({ stage: 'connecting' })
      const port = this.platform.signaling
      this.unsubs.push(port.onMembership((m) => this.onMembership(m)))
      this.unsubs.push(port.onCommand((c) => this.onCommand(c)))
      this.unsubs.push(port.onRemoved((why) => this.dispatch({ type: 'removed', why })))
      this.unsubs.push(port.onReconnect(() => this.dispatch({ type: 'reconnected' })))
      if (port.onCredit) this.unsubs.push(port.onCredit((c) => this.onCredit(c)))
      const { self, membership } = await port.join({ room: this.opts.room, name: this.snap.name ?? undefined, agent: this.platform.agent })
      this.update({ self })
      this.log(say.joined(membership.room, self, this.snap.name))
      this.dispatch({ type: 'joined' })
      this.onMembership(this.latestMembership ?? membership)
    } catch (e) {
      this.fail(e)
    }
  }

  /** Resolves when the training loop has exited (maxSteps reached or stopped). */
  finished(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (this.stop.signal.aborted || this.snap.stage === 'done' ? resolve() : setTimeout(check, 200))
      check()
    })
  }

  // ---- lifecycle: events in, effects out ----

  private dispatch(e: LifecycleEvent): void {
    const prev = this.life
    const { state, effects } = reduce(prev, e)
    this.life = state
    if (state !== prev) this.showLifecycle(prev, state)
    for (const effect of effects) this.perform(effect)
    if (state !== prev) this.wakeAll()
  }

  private perform(effect: Effect): void {
    switch (effect.type) {
      case 'tell-away':
        if (!this.stop.signal.aborted) this.platform.signaling.away(effect.reason)
        break
      case 'restart-run':
        if (this.membership) this.restartRun(effect.keepTrainer)
        break
      case 'rejoin':
        void this.rejoin(effect.reason)
        break
      case 'wake':
        this.wakeAll()
        break
      case 'shutdown':
        this.shutdown(effect.reason)
        break
      default: {
        const never: never = effect
        void never
      }
    }
  }

  /** Mirrors the lifecycle into the snapshot and the activity log. */
  private showLifecycle(prev: Lifecycle, next: Lifecycle): void {
    const away = shownAway(next)
    if (away !== shownAway(prev)) this.update({ away })
    if (next.toldAway && !prev.toldAway) this.log(say.steppedOut(away ?? 'paused'))
    if (!next.toldAway && prev.toldAway && next.phase !== 'rejoining') this.log(say.back())
    if (next.phase === 'away' || next.phase === 'paused' || next.phase === 'diverged')
      this.update({ stage: next.phase === 'diverged' || this.membership?.diverged ? 'diverged' : 'paused' })
  }

  /** Read through a call: TypeScript would otherwise keep a narrowing across dispatch(). */
  private phase(): Lifecycle['phase'] {
    return this.life.phase
  }

  private wakeAll(): void {
    this.changed.resolve()
    this.changed = signalOnce()
  }

  /** Resolves on the next lifecycle change, after `ms`, or when `signal` aborts. */
  private untilChange(signal: AbortSignal, ms = GATE_POLL_MS): Promise<void> {
    return Promise.race([this.changed.promise, sleep(ms, signal).catch(() => {})])
  }

  private onMembership(m: MembershipAnnouncement): void {
    if (!this.latestMembership || m.epoch >= this.latestMembership.epoch || m.run !== this.latestMembership.run) this.latestMembership = m
    try {
      // Announcements can arrive before our join ack; start() replays the latest one after it.
      const self = this.snap.self
      if (!self || this.life.phase === 'rejoining' || this.life.phase === 'cooldown') return
      const prev = this.membership
      this.membership = m
      this.update({ peers: [...m.peers], run: m.run, config: m.config })
      const newRun = !prev || prev.run !== m.run || JSON.stringify(prev.config) !== JSON.stringify(m.config)
      if (newRun) this.localDivergence = null
      this.update({ diverged: this.divergenceView(m) })
      this.dispatch({ type: 'membership', inRoster: m.peers.includes(self), paused: m.paused, newRun })
      // The announcement may have sent us rejoining (it no longer lists us).
      if (this.phase() === 'rejoining') return
      this.mesh?.updateMembership({ epoch: m.epoch, peers: m.peers, roles: m.roles })
      if (m.paused) this.update({ stage: m.diverged || this.localDivergence ? 'diverged' : 'paused' })
    } catch (e) {
      this.log(say.membershipError((e as Error).message))
    }
  }

  /** Tells the room we can train and waits until the roster includes us (re-asking on a deadline). */
  private async becomeReady(signal: AbortSignal): Promise<void> {
    // An aborted run (new run, leave) just returns: the caller checks `signal`, and throwing
    // here would end the whole session as failed.
    while (this.life.pending && !signal.aborted) {
      // A paused or hidden tab (e.g. reloaded for a new run meanwhile) enters only once back.
      if (this.life.away.length > 0) {
        this.update({ stage: 'paused' })
        await this.untilChange(signal)
        continue
      }
      // Take the wait first: a port may answer synchronously (the membership arrives inside ready()).
      const wait = this.untilChange(signal, READY_RETRY_MS)
      this.platform.signaling.ready()
      await wait
    }
  }

  /** Joins again under a new id and restarts the run from the swarm's state. */
  private async rejoin(reason: string): Promise<void> {
    if (this.stop.signal.aborted) return
    this.log(say.rejoining(reason))
    this.runAbort?.abort()
    // Announcements from before this join describe a roster we are no longer in (we left, or the
    // server restarted): one listing us must not count as "already entered" below.
    this.latestMembership = null
    try {
      await sleep(500 + Math.random() * 1000, this.stop.signal)
      const { self, membership } = await this.joinWaitingOutCooldowns()
      this.update({ self })
      this.membership = null // a fresh run: new id, new mesh, bootstrap from peers
      this.localDivergence = null
      this.dispatch({ type: 'joined' })
      // Set by onMembership while we awaited the join (TypeScript cannot see that).
      const latest = this.latestMembership as MembershipAnnouncement | null
      this.onMembership(latest && latest.peers.includes(self) ? latest : membership)
    } catch (e) {
      if (!this.stop.signal.aborted) this.fail(e)
    }
  }

  /**
   * An evicted peer sits out the server's cooldown; an unanswered join (a server busy right after
   * a reconnect) is asked again, up to JOIN_RETRIES times; any other refusal is fatal.
   */
  private async joinWaitingOutCooldowns(): ReturnType<SignalingPort['join']> {
    for (let unanswered = 0; ; ) {
      try {
        return await this.platform.signaling.join({ room: this.opts.room, name: this.snap.name ?? undefined, agent: this.platform.agent })
      } catch (e) {
        if (e instanceof DeadlineError && unanswered < JOIN_RETRIES && !this.stop.signal.aborted) {
          unanswered++
          this.log(say.joinRetry(unanswered))
          await sleep(500 + Math.random() * 1000, this.stop.signal)
          continue
        }
        if (!(e instanceof JoinRejectedError) || e.retryAfterMs === null) throw e
        if (e.code === 'busy') this.log(say.roomMoving(e.retryAfterMs))
        else this.log(say.cooldown(e.retryAfterMs))
        this.dispatch({ type: 'cooldown' })
        this.update({ stage: 'connecting' })
        await sleep(e.retryAfterMs + 100 + Math.random() * 500, this.stop.signal)
      }
    }
  }

  private onCommand(c: PeerCommand): void {
    switch (c.type) {
      case 'slow':
        this.slowFactor = c.factor
        this.update({ faults: { ...this.snap.faults, slowFactor: c.factor } })
        this.log(say.slowed(c.factor))
        this.maybeReport(true)
        break
      case 'latency':
        this.latencyMs = c.ms
        this.mesh?.setLatency(c.ms)
        this.update({ faults: { ...this.snap.faults, latencyMs: c.ms } })
        this.log(say.latency(c.ms))
        this.maybeReport(true)
        break
      case 'disconnect':
        this.dropAndRejoin()
        break
      case 'restore-checkpoint':
        this.restoreRequested = true
        this.log(say.rollingBack(c.step))
        // Keep data and model objects: only the parameters change.
        this.restartRun(true)
        break
      default: {
        const never: never = c
        void never
      }
    }
  }

  /**
   * Host fault "disconnect": drop every link and the server connection at once, as a network blip
   * would. The server takes us out of the roster (neighbours stop waiting), the port reconnects
   * and its reconnect event rejoins under a new id, bootstrapping from the swarm. A port that
   * cannot drop its connection rejoins at once.
   */
  private dropAndRejoin(): void {
    if (this.stop.signal.aborted) return
    this.log(say.disconnected())
    this.runAbort?.abort()
    this.mesh?.close()
    this.mesh = null
    this.update({ stage: 'connecting', neighbors: [] })
    const port = this.platform.signaling
    if (port.dropConnection) {
      try {
        port.dropConnection()
        return
      } catch (e) {
        this.log(say.dropFailed((e as Error).message))
      }
    }
    this.dispatch({ type: 'reconnected' })
  }

  /**
   * Whether to start from the room checkpoint: it exists and nobody else in the roster has
   * reported progress past it — after a server restart every tab that comes back starts over at
   * step 0, however many come back together; in a running swarm the others are past it and the
   * algorithm's bootstrap takes their newer state instead.
   */
  private async shouldResume(m: MembershipAnnouncement, self: string, ownProgress: number, read: RoomProgress | null): Promise<boolean> {
    if (!this.platform.fetchCheckpoint) return false
    if (!this.platform.fetchRoomProgress) return m.peers.length === 1 && ownProgress === 0
    const p = read ?? await this.platform.fetchRoomProgress(m.room)
    if (p.checkpointStep === null) return false
    const others = p.peers.filter((x) => x.id !== self && m.peers.includes(x.id))
    const furthest = Math.max(ownProgress, ...others.map((x) => x.globalStep))
    if (furthest >= p.checkpointStep) this.log(say.checkpointSkipped(p.checkpointStep, furthest))
    return furthest < p.checkpointStep
  }

  private restartRun(keepTrainer = false): void {
    const prevLoop = this.loopDone
    this.runAbort?.abort()
    this.wakeAll()
    const ctl = new AbortController()
    this.runAbort = ctl
    this.loopDone = prevLoop.then(() => this.runLoop(ctl.signal, keepTrainer)).catch((e) => this.fail(e))
  }

  // ---- one run, in phases ----

  /**
   * One run: load (or keep) data and model, enter the roster, build the mesh and the algorithm
   * (bootstrapped from the swarm), then step until aborted. `keepTrainer` (a tab stepping out
   * and back in) reuses the loaded data and the model as it is instead of starting over; every
   * other restart (new run, new peer id) loads afresh.
   */
  private async runLoop(signal: AbortSignal, keepTrainer = false): Promise<void> {
    if (signal.aborted || this.stop.signal.aborted) return
    const m = this.membership!
    const self = this.snap.self!
    const config = m.config
    this.instance?.dispose()
    this.instance = null
    // Links drop here: a fresh mesh is built once we are back in the roster.
    this.mesh?.close()
    this.mesh = null
    const prepared = await this.prepare(signal, m, self, keepTrainer)
    if (!prepared) return
    const { trainer, shard, ownProgress } = prepared
    this.update({ dataProgress: 1, stage: 'connecting' })
    await this.becomeReady(signal)
    if (signal.aborted) return
    const current = this.membership!
    const mesh = this.platform.createMesh({
      self, membership: { epoch: current.epoch, peers: current.peers, roles: current.roles }, config, compute: trainer.compute,
    })
    if (this.latencyMs) mesh.setLatency(this.latencyMs)
    this.mesh = mesh
    // A kept model carries on from its own step (the schedule continues; neighbours may move it on).
    if (ownProgress > 0) mesh.clock.advance(ownProgress)
    // Before the algorithm bootstraps: the counters it adopts are bounded by the room's progress.
    const progress = await this.readRoomProgress(mesh, current.room, self)
    await this.maybeResume(mesh, trainer, current, self, ownProgress, progress)
    const instance = await this.buildAlgorithm(signal, config, trainer, mesh, shard)
    if (!instance) return
    this.instance = instance
    this.log(say.training(config.algorithm, config.topology, config.dataset, config.model))
    await this.stepLoop(signal, instance, trainer, mesh, config)
  }

  /** Loads data and model for this run's shard, or keeps them when stepping back in. */
  private async prepare(
    signal: AbortSignal, m: MembershipAnnouncement, self: string, keepTrainer: boolean,
  ): Promise<{ trainer: Trainer; shard: Shard; ownProgress: number } | null> {
    const config = m.config
    const kept = keepTrainer && this.trainer && this.trainerFor === JSON.stringify(config) ? this.trainer : null
    // Our own progress only counts when our model is the one we trained (see shouldResume).
    const ownProgress = kept ? this.snap.globalStep : 0
    if (kept && this.trainerShard) return { trainer: kept, shard: this.trainerShard, ownProgress }
    this.trainer?.dispose()
    this.trainer = null
    this.update({ stage: 'loading', step: 0, globalStep: 0, loss: null, accuracy: null, dataProgress: 0 })
    // Pending joiners take the next roster slot for their shard.
    const inRoster = m.peers.includes(self)
    const index = inRoster ? m.peers.indexOf(self) : m.peers.length
    const shard = { index, count: Math.max(1, m.peers.length + (inRoster ? 0 : 1)), seed: config.seed ^ hashSeed(self) }
    const trainer = await this.platform.prepare(config, shard, (f) => this.update({ dataProgress: f }))
    if (signal.aborted) {
      trainer.dispose()
      return null
    }
    this.update({ computeThread: trainer.computeThread ?? 'main' })
    this.log(say.modelThread(trainer.computeThread === 'worker', this.platform.agent === 'browser', trainer.computeNote))
    this.trainer = trainer
    this.trainerFor = JSON.stringify(config)
    this.trainerShard = shard
    return { trainer, shard, ownProgress }
  }

  /** Resume from the room checkpoint when the swarm is not past it (server restart, everyone left). */
  private async maybeResume(
    mesh: SessionMesh, trainer: Trainer, m: MembershipAnnouncement, self: string, ownProgress: number, progress: RoomProgress | null,
  ): Promise<void> {
    if (!this.platform.fetchCheckpoint) return
    try {
      const restore = this.restoreRequested
      this.restoreRequested = false
      const cp = restore || (await this.shouldResume(m, self, ownProgress, progress)) ? await this.platform.fetchCheckpoint(m.room) : null
      if (cp && cp.schemaHash === trainer.compute.schemaHash && cp.params.length === trainer.compute.paramCount) {
        await trainer.compute.writeParams(cp.params)
        mesh.clock.advance(cp.step)
        this.log(say.resumed(cp.step))
      }
    } catch (e) {
      this.log(say.checkpointNotLoaded((e as Error).message))
    }
  }

  /**
   * Reads the room's progress as the server publishes it and measures the mesh clock's ceiling
   * from it (ProgressClock.setRoomProgress): remote clocks and a joiner's bootstrap counters
   * beyond it are not believed (docs/security.md). Null without fetchRoomProgress or when the read
   * failed; the clock then keeps the bound it had (its own progress plus a rate since).
   */
  private async readRoomProgress(mesh: SessionMesh, room: string, self: string): Promise<RoomProgress | null> {
    if (!this.platform.fetchRoomProgress) return null
    this.lastRoomProgress = performance.now()
    try {
      const p = await this.platform.fetchRoomProgress(room)
      mesh.clock.setRoomProgress(roomProgressStep(p, self, this.membership?.peers ?? []))
      return p
    } catch (e) {
      this.log(say.progressNotRead((e as Error).message))
      return null
    }
  }

  /** Re-reads the room's progress every ROOM_PROGRESS_INTERVAL_MS, in the background. */
  private maybeReadRoomProgress(mesh: SessionMesh): void {
    const room = this.membership?.room
    const self = this.snap.self
    if (!room || !self || performance.now() - this.lastRoomProgress < ROOM_PROGRESS_INTERVAL_MS) return
    void this.readRoomProgress(mesh, room, self)
  }

  private async buildAlgorithm(
    signal: AbortSignal, config: RoomConfig, trainer: Trainer, mesh: SessionMesh, shard: Shard,
  ): Promise<AlgorithmInstance | null> {
    const hogwild = ALGORITHM_DESCRIPTORS[config.algorithm].hogwild && this.platform.createHogwild
      ? await this.platform.createHogwild(config, trainer, shard)
      : undefined
    const instance = await ALGORITHM_FACTORIES[config.algorithm]({
      mesh, compute: trainer.compute, config, signal, hogwild,
      log: (event, detail) => this.log(describeEvent(event, detail)),
      now: () => performance.now(),
    })
    if (signal.aborted) {
      instance.dispose()
      return null
    }
    return instance
  }

  /** Steps while the lifecycle allows it; reports, evaluates and checkpoints on their own clocks. */
  private async stepLoop(signal: AbortSignal, instance: AlgorithmInstance, trainer: Trainer, mesh: SessionMesh, config: RoomConfig): Promise<void> {
    this.rates.reset()
    const detector = new DivergenceDetector()
    this.localDivergence = null
    if (this.membership) this.update({ diverged: this.divergenceView(this.membership) })
    const run = { step: 0, samples: 0, lastLoss: null as number | null, lastConsensus: null as number | null }
    this.lastSnapshot = 0
    while (!signal.aborted && !this.stop.signal.aborted) {
      if (!canStep(this.life)) {
        this.update({ stage: this.life.phase === 'diverged' || this.membership?.diverged ? 'diverged' : 'paused' })
        this.maybeReport(true)
        await this.untilChange(signal)
        continue
      }
      const t0 = performance.now()
      const report = await this.stepOnce(signal, instance, detector, config)
      if (!report) {
        if (signal.aborted || this.stop.signal.aborted) break
        continue
      }
      const dt = performance.now() - t0
      run.step = report.step
      run.samples += report.samples
      if (this.slowFactor > 1) await sleep(dt * (this.slowFactor - 1), signal).catch(() => {})
      if (Number.isFinite(report.loss)) run.lastLoss = report.loss
      if (report.consensus !== undefined) run.lastConsensus = report.consensus
      const verdict = detector.observe(report.loss, report.globalStep)
      if (verdict) {
        this.update({ step: run.step, globalStep: report.globalStep, loss: run.lastLoss ?? this.snap.loss })
        this.diverge(verdict, config)
        continue
      }
      const finishing = !!this.opts.maxSteps && run.step >= this.opts.maxSteps
      this.refreshSnapshot(report, run, mesh, dt > STALL_FACTOR * config.stepDeadlineMs, finishing)
      await this.maybeEvaluate(instance, trainer)
      this.maybeReport(false)
      this.maybeReadRoomProgress(mesh)
      await this.maybeCheckpoint(instance, trainer, report.globalStep)
      if (finishing) {
        await this.maybeEvaluate(instance, trainer, true)
        this.maybeReport(true)
        this.dispatch({ type: 'finished' })
        this.update({ stage: 'done' })
        break
      }
      // Yield to the event loop so signaling, data channels and the UI stay responsive — without
      // setTimeout(0), whose ≥1 ms (Node) / ≥4 ms (nested, browsers) clamp alone halved the
      // steps/s of a small model (bench/overhead.ts), and which hidden tabs throttle further.
      await yieldToEventLoop()
    }
  }

  /** One algorithm step; null when it did not complete (aborted, a deadline, or the model diverged). */
  private async stepOnce(signal: AbortSignal, instance: AlgorithmInstance, detector: DivergenceDetector, config: RoomConfig): Promise<StepReport | null> {
    try {
      const report = await instance.step()
      // A step that ends after its run was aborted (rejoin, new run) must not report: the
      // report would go out under our new peer id with the old run's step.
      return signal.aborted || this.stop.signal.aborted ? null : report
    } catch (e) {
      if (signal.aborted || this.stop.signal.aborted) return null
      if (isDeadline(e)) {
        this.log(say.stepDeadline((e as Error).message))
        return null
      }
      // A model that blew up fails where its parameters are written (non-finite values are
      // refused): that is divergence, not a crash, and the tab stays in the room.
      const params = await instance.evalParams().catch(() => null)
      if (/non-finite|NaN|Infinity/i.test((e as Error).message ?? '') || (params && !allFinite(params))) {
        this.diverge(detector.nonFinite(this.snap.globalStep, `the model is no longer finite (${(e as Error).message.slice(0, 120)})`), config)
        return null
      }
      throw e
    }
  }

  /**
   * The snapshot (UI, reports) is refreshed at most every SNAPSHOT_INTERVAL_MS: building it
   * (mesh stats, neighbours, rates, listeners) every step cost a small model ~40 % of its
   * steps/s (bench/overhead.ts). Stage changes and the last step refresh at once.
   */
  private refreshSnapshot(
    report: StepReport, run: { step: number; samples: number; lastLoss: number | null; lastConsensus: number | null },
    mesh: SessionMesh, stalled: boolean, finishing: boolean,
  ): void {
    const now = performance.now()
    if (!stalled && !finishing && this.snap.stage === 'training' && now - this.lastSnapshot < SNAPSHOT_INTERVAL_MS) return
    this.lastSnapshot = now
    const st = mesh.stats()
    const rates = this.rates.push(now, run.step, run.samples)
    this.update({
      stage: stalled ? 'stalled' : 'training', step: run.step, globalStep: report.globalStep,
      loss: run.lastLoss ?? this.snap.loss,
      lr: report.lr, h: report.h ?? null, consensus: run.lastConsensus ?? this.snap.consensus,
      samples: run.samples, bytesSent: st.bytesSent, bytesReceived: st.bytesReceived,
      ...rates,
      neighbors: this.currentNeighbours(report.globalStep),
      connectivity: linkConnectivity(st),
    })
  }

  /** Topology neighbours in the current roster (what the dashboard draws as edges). */
  private currentNeighbours(step: number): string[] {
    const m = this.membership
    const self = this.snap.self
    if (!m || !self) return []
    const n = neighbors(m.config.topology, m.peers, self, step, m.roles.ps)
    return [...new Set([...n.sendTo, ...n.receiveFrom])]
  }

  private async maybeEvaluate(instance: AlgorithmInstance, trainer: Trainer, force = false): Promise<void> {
    const now = performance.now()
    if (!force && now - this.lastEval < Math.max(EVAL_INTERVAL_MS, this.lastEvalMs / EVAL_TIME_BUDGET)) return
    const params = await instance.evalParams()
    const r = await trainer.evaluate(params)
    this.lastEval = performance.now()
    this.lastEvalMs = this.lastEval - now
    this.update({ accuracy: r.accuracy, evalMs: this.snap.evalMs + this.lastEvalMs })
  }

  private maybeReport(force: boolean): void {
    const now = performance.now()
    if (!force && now - this.lastReport < REPORT_INTERVAL_MS) return
    this.lastReport = now
    try {
      this.platform.signaling.report(buildReport(this.snap, this.mesh?.stats(), {
        slowFactor: this.slowFactor, latencyMs: this.latencyMs, divergence: this.localDivergence,
        link: this.platform.link ?? this.snap.config?.link,
      }))
    } catch (e) {
      this.log(say.reportFailed((e as Error).message))
    }
  }

  private async maybeCheckpoint(instance: AlgorithmInstance, trainer: Trainer, globalStep: number): Promise<void> {
    const now = performance.now()
    const m = this.membership
    // The server takes checkpoints from the peer it named writer (a peer with tenure); older servers name none.
    const writer = m?.roles.writer ?? m?.peers[0]
    if (!m || writer !== this.snap.self || now - this.lastCheckpoint < CHECKPOINT_INTERVAL_MS) return
    this.lastCheckpoint = now
    const params = await instance.evalParams()
    // Exactly the parameters (a copy): the server checks the byte length against the model.
    this.platform.signaling.checkpoint({
      step: globalStep, schemaHash: trainer.compute.schemaHash, params: new Uint8Array(params.buffer, params.byteOffset, params.byteLength).slice(),
    })
  }

  /** This tab's model diverged: stop stepping, stay in the room, and say so (the loop waits). */
  private diverge(v: Divergence, config: RoomConfig): void {
    if (this.localDivergence) return
    this.localDivergence = v
    const hint = divergenceHint(config)
    this.log(say.diverged(v.step, v.reason, hint))
    this.update({ stage: 'diverged', diverged: { step: v.step, loss: Number.isFinite(v.loss) ? v.loss : null, reason: v.reason, hint } })
    this.dispatch({ type: 'diverged' })
    this.maybeReport(true)
  }

  /** What the UI shows: the room's verdict on the run, else this tab's own, else nothing. */
  private divergenceView(m: MembershipAnnouncement): SessionSnapshot['diverged'] {
    const hint = divergenceHint(m.config)
    if (m.diverged) return { step: m.diverged.step, loss: m.diverged.loss, reason: m.diverged.reason, hint }
    const v = this.localDivergence
    return v ? { step: v.step, loss: Number.isFinite(v.loss) ? v.loss : null, reason: v.reason, hint } : null
  }

  /** Disconnects for good (left, removed, failed): no hand-over here. */
  private shutdown(reason: string, finalStage: SessionStage = 'done'): void {
    if (this.stop.signal.aborted) return
    this.log(say.ended(reason))
    this.stop.abort()
    this.runAbort?.abort()
    this.wakeAll()
    this.instance?.dispose()
    this.mesh?.close()
    this.platform.signaling.close()
    for (const u of this.unsubs) u()
    this.update({ stage: finalStage })
  }

  private fail(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e)
    // Keep the stack in the console for whoever debugs this tab; the UI shows the message.
    console.error('tabswarm session error', e)
    this.log(say.error(msg))
    this.update({ stage: 'error', error: msg })
    // Tell the room right away, so the dashboard shows this tab as failed instead of stale.
    this.maybeReport(true)
    this.dispatch({ type: 'failed' })
    // Then leave: a crashed tab left in the roster would make its neighbours wait out their
    // deadlines every step until they report it. The page keeps showing the error.
    this.shutdown(`error: ${msg}`, 'error')
  }

  private log(line: Said): void {
    const at = new Date().toISOString().slice(11, 19)
    const log = [...this.snap.log, { at, ...line }].slice(-LOG_LINES)
    this.update({ log })
  }

  /**
   * The server's account of this volunteer's contribution (kept under its id across reloads and
   * pauses). The first one after a join that already holds samples is a returning volunteer.
   */
  private onCredit(c: Credit): void {
    const names: Record<string, string> = {}
    for (const n of c.neighbours) if (n.name) names[n.id] = n.name
    if (this.snap.credit === null && c.samples > 0) this.log(say.welcomeBack(c.samples))
    this.update({ credit: { samples: c.samples, rank: c.rank, of: c.of, share: c.share, total: c.total }, neighbourNames: names })
  }

  private update(patch: Partial<SessionSnapshot>): void {
    this.snap = { ...this.snap, ...patch }
    for (const cb of this.listeners) {
      try {
        cb(this.snap)
      } catch {
        /* a UI listener must not break training */
      }
    }
  }
}

export type { SessionStage }
