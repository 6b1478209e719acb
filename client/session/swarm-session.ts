import type { AlgorithmInstance, Compute, HogwildPool, StepReport } from '../../shared/algorithms/types'
import type { RoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import { JoinRejectedError, type AwayReason, type BackendName, type MembershipAnnouncement, type PeerCommand, type PeerReport } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { isDeadline, sleep, yieldToEventLoop, type Membership, type Mesh, type Unsubscribe } from '../../shared/transport'
import { ALGORITHM_FACTORIES } from '../../shared/algorithms/index'
import { neighbors } from '../../shared/topology'
import { allFinite } from '../../shared/math/vector'
import { DivergenceDetector, divergenceHint, type Divergence } from '../../shared/divergence'
import type { SessionHandle, SessionSnapshot, SessionStage } from './types'

/**
 * The one file that knows the order of a volunteer's life (STYLE.md §A):
 *   join room → choose backend → load shard → connect mesh → bootstrap algorithm (§9.3)
 *   → loop { algorithm.step() ; report ≥1/s ; evaluate now and then ; checkpoint }
 *   → graceful leave on pagehide / SIGINT (§9.4).
 * Everything platform-specific (socket.io client, WebRTC stack, tfjs backend, data loading,
 * Web Workers vs worker_threads) is injected through `SessionPlatform`, so the browser tab and the
 * headless Node volunteer run this same code.
 */

/** Peers report at least this often while training (issue 2: "at least once a second"). */
export const REPORT_INTERVAL_MS = 500
/** Test accuracy is measured at most this often (costs one forward pass over the test subset). */
export const EVAL_INTERVAL_MS = 3000
/**
 * ...and at most this fraction of wall-clock time: a CNN's pass over the test subset takes
 * seconds on wasm, and a fixed 3 s interval made evaluation most of what such a tab did.
 */
export const EVAL_TIME_BUDGET = 0.05
/** The first peer of the roster uploads the model this often, for checkpoints and downloads. */
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

export interface Trainer {
  compute: Compute
  /** This peer's training shard on the host (LAP-SGD workers load their own copy of it). */
  train: Dataset
  /** Loss and accuracy of `params` on the held-out test subset. */
  evaluate(params: Float32Array): Promise<{ loss: number; accuracy: number }>
  dispose(): void
  /** Where `compute` runs (default 'main'), and why when it is not where the platform prefers. */
  computeThread?: 'worker' | 'main'
  computeNote?: string
}

export interface SessionMesh extends Mesh {
  updateMembership(m: Membership): void
  /** Fault injection: delay every outgoing message by `ms`. */
  setLatency(ms: number): void
  close(): void
}

export interface SignalingPort {
  join(req: { room: string; name?: string; agent: 'browser' | 'node' }): Promise<{ self: string; membership: MembershipAnnouncement }>
  /** This joined volunteer has its data and model: put it in the roster (see readySchema). */
  ready(): void
  onMembership(cb: (m: MembershipAnnouncement) => void): Unsubscribe
  onCommand(cb: (c: PeerCommand) => void): Unsubscribe
  /** The server removed us: 'evicted' (neighbours reported us unresponsive) or 'kicked' (by the host). */
  onRemoved(cb: (why: 'evicted' | 'kicked') => void): Unsubscribe
  /** The socket reconnected after a drop (e.g. server restart): our old peer id is gone. */
  onReconnect(cb: () => void): Unsubscribe
  /**
   * Steps out of the roster for a while (awaySchema: user pause, hidden tab) without leaving the
   * room; ready() brings us back. A port without it keeps a paused tab in the roster (neighbours
   * then wait out their deadlines for it), so every port should have it.
   */
  away?(reason: AwayReason): void
  /**
   * Drops the connection to the server as a network blip would; the port reconnects by itself
   * and onReconnect fires (the host's "disconnect" fault). Like any reconnect it gives a new peer
   * id: neighbours must not take the returning tab's messages for duplicates of its old ones.
   */
  dropConnection?(): void
  report(r: PeerReport): void
  checkpoint(c: { step: number; schemaHash: string; params: Uint8Array }): void
  close(): void
}

export interface SessionPlatform {
  readonly agent: 'browser' | 'node'
  /** Base URL of the server (for /api and /data). */
  readonly serverUrl: string
  signaling: SignalingPort
  selectBackend(forced?: BackendName): Promise<{ backend: BackendName; reason: string }>
  prepare(
    config: RoomConfig,
    shard: { index: number; count: number; seed: number },
    onProgress: (fraction: number) => void,
  ): Promise<Trainer>
  createMesh(args: { self: string; membership: Membership; config: RoomConfig; compute: Compute }): SessionMesh
  createHogwild?(config: RoomConfig, trainer: Trainer, shard: { index: number; count: number; seed: number }): Promise<HogwildPool>
  /** Latest room checkpoint, if the server has one (resume after a restart). */
  fetchCheckpoint?(room: string): Promise<{ step: number; schemaHash: string; params: Float32Array } | null>
  /**
   * The room's checkpoint step and each roster peer's reported progress: a tab resumes from the
   * checkpoint when nobody in the roster is past it (see shouldResume). Without it a tab resumes
   * only when it is alone in the roster.
   */
  fetchRoomProgress?(room: string): Promise<RoomProgress>
}

export interface RoomProgress {
  checkpointStep: number | null
  peers: { id: string; globalStep: number }[]
}

export interface SessionOptions {
  room: string
  name?: string
  backend?: BackendName
  /** Stop after this many local steps (Node volunteers in benchmarks); default: run until stopped. */
  maxSteps?: number
}

function initialSnapshot(room: string): SessionSnapshot {
  return {
    stage: 'idle', room, self: null, config: null, run: 0, backend: null, backendReason: '', computeThread: null, dataProgress: 0,
    step: 0, globalStep: 0, loss: null, accuracy: null, samplesPerSec: 0, stepsPerSec: 0, samples: 0, evalMs: 0,
    bytesSent: 0, bytesReceived: 0, neighbors: [], peers: [], lr: null, h: null, consensus: null, error: null, log: [],
    away: null, diverged: null, faults: { slowFactor: 1, latencyMs: 0 },
  }
}

function hashSeed(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

/**
 * An algorithm's log event as a line for the tab's activity list (people read it, so no raw
 * JSON): the common events in words, the rest as "event: key value, …".
 */
export function describeEvent(event: string, detail?: Record<string, unknown>): string {
  const d = detail ?? {}
  const peer = (v: unknown) => (typeof v === 'string' ? v.slice(0, 8) : String(v))
  if (event === 'realign') return `caught up with the neighbours (round ${String(d.from)} → ${String(d.to)})`
  if (event === 'rejected') return `refused a message from ${peer(d.from)}: ${String(d.why ?? 'invalid')}`
  if (event.endsWith('/bootstrap') && typeof d.donors === 'number') return `started from the models of ${d.donors} neighbour${d.donors === 1 ? '' : 's'}`
  if (event.endsWith('/ps-start')) return 'this tab now holds the parameter server'
  const parts = Object.entries(d)
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v).slice(0, 40)}`)
  return parts.length ? `${event}: ${parts.join(', ')}` : event
}

/** How often a pending joiner repeats 'ready' until the roster includes it. */
const READY_RETRY_MS = 5_000

export class SwarmSession implements SessionHandle {
  private snap: SessionSnapshot
  private listeners = new Set<(s: SessionSnapshot) => void>()
  private stop = new AbortController()
  private runAbort: AbortController | null = null
  private paused = false
  private userPaused = false
  /** Why this tab wants to be out of the roster (user pause, hidden tab); empty = in. */
  private awayReasons = new Set<AwayReason>()
  /** We told the room we stepped out: out of the roster until we say ready again. */
  private away = false
  private backWaiters = new Set<() => void>()
  private slowFactor = 1
  private membership: MembershipAnnouncement | null = null
  private mesh: SessionMesh | null = null
  private instance: AlgorithmInstance | null = null
  private trainer: Trainer | null = null
  /** The room config and shard `trainer` was prepared for (kept across stepping out and in). */
  private trainerFor: string | null = null
  private trainerShard: { index: number; count: number; seed: number } | null = null
  private loopDone: Promise<void> = Promise.resolve()
  private latencyMs = 0
  private wake: (() => void) | null = null
  private unsubs: Unsubscribe[] = []
  private lastReport = 0
  private lastEval = 0
  private lastEvalMs = 0
  private lastCheckpoint = 0
  private rateWindow: { t: number; step: number; samples: number }[] = []
  /**
   * This run's model diverged (shared/divergence.ts): the loop stops stepping and the tab stays
   * in the room, reporting stage 'diverged', until a new run (or a rejoin) restarts it.
   */
  private localDivergence: Divergence | null = null

  constructor(private readonly platform: SessionPlatform, private readonly opts: SessionOptions) {
    this.snap = initialSnapshot(opts.room)
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
    this.userPaused = true
    this.update({ stage: 'paused' })
    this.stepOut('paused')
  }

  resume(): void {
    this.userPaused = false
    this.stepBack('paused')
  }

  /**
   * The tab has been hidden for a while (browser-session.ts waits out a grace period first):
   * browsers throttle hidden tabs to a crawl, so it steps out like a paused one and comes back
   * when visible again (unless the user paused it meanwhile).
   */
  setHidden(hidden: boolean): void {
    if (hidden) this.stepOut('hidden')
    else this.stepBack('hidden')
  }

  /** Out of the roster, still joined (rooms.ts away()); the loop pauses while `away`. */
  private stepOut(reason: AwayReason): void {
    this.awayReasons.add(reason)
    const shown: AwayReason = this.awayReasons.has('paused') ? 'paused' : 'hidden'
    this.update({ away: shown })
    const port = this.platform.signaling
    if (!port.away || this.stop.signal.aborted) return
    if (!this.away) {
      const wasInRoster = !this.pending && this.snap.self !== null
      this.away = true
      // Pending again: a roster without us is expected now, not a reason to rejoin.
      this.pending = true
      this.log(shown === 'paused' ? 'paused: stepped out of the roster, neighbours carry on without this tab' : 'tab hidden: stepped out of the roster until it is visible again')
      // End the step in flight and drop the links now; the next run keeps data and model and
      // waits in becomeReady() until we are back. (Reusing the old mesh and algorithm after the
      // roster went on without us left stale links that stalled everyone on our return.)
      if (wasInRoster && this.membership) this.restartRun(true)
    }
    // Before our join this only marks us; start() and rejoin() tell the room once joined.
    if (this.snap.self) port.away(shown)
  }

  private stepBack(reason: AwayReason): void {
    this.awayReasons.delete(reason)
    if (this.awayReasons.size > 0) {
      // Still away for the other reason: only the label changes.
      this.update({ away: 'paused' })
      if (this.away && this.snap.self) this.platform.signaling.away?.('paused')
      return
    }
    this.update({ away: null })
    if (this.away) {
      this.away = false
      this.log('back: asking to re-enter the roster')
      for (const r of [...this.backWaiters]) r()
    }
    this.wake?.()
  }

  /** Resolves when this tab is no longer away (or `signal` aborts). */
  private untilBack(signal: AbortSignal): Promise<void> {
    if (!this.away || signal.aborted) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const done = () => {
        this.backWaiters.delete(done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      this.backWaiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Graceful leave: hand the model to neighbours once (§9.4), then disconnect. */
  async leave(): Promise<void> {
    if (this.stop.signal.aborted) return
    try {
      await Promise.race([this.instance?.leave(), sleep(leaveBudgetMs(this.membership?.config.stepDeadlineMs))])
    } catch {
      /* best effort */
    }
    this.shutdown('left')
  }

  /** Abrupt disconnect (host fault injection, tests): no hand-over. */
  private shutdown(reason: string, finalStage: SessionStage = 'done'): void {
    if (this.stop.signal.aborted) return
    this.log(`session ended: ${reason}`)
    this.stop.abort()
    this.runAbort?.abort()
    this.wake?.()
    this.instance?.dispose()
    this.mesh?.close()
    this.platform.signaling.close()
    for (const u of this.unsubs) u()
    this.update({ stage: finalStage })
  }

  /** Starts the session; resolves when joined and the first run has started (or failed). */
  async start(): Promise<void> {
    try {
      this.update({ stage: 'loading' })
      const backend = await this.platform.selectBackend(this.opts.backend)
      this.update({ backend: backend.backend, backendReason: backend.reason })
      this.log(`backend ${backend.backend}: ${backend.reason}`)
      this.update({ stage: 'connecting' })
      this.unsubs.push(this.platform.signaling.onMembership((m) => this.onMembership(m)))
      this.unsubs.push(this.platform.signaling.onCommand((c) => this.onCommand(c)))
      this.unsubs.push(this.platform.signaling.onRemoved((why) => {
        if (why === 'kicked') return this.shutdown('removed by the host')
        void this.rejoin('the room dropped this tab after missed deadlines')
      }))
      this.unsubs.push(this.platform.signaling.onReconnect(() => void this.rejoin('reconnected to the server')))
      const { self, membership } = await this.platform.signaling.join({
        room: this.opts.room, name: this.opts.name, agent: this.platform.agent,
      })
      this.pending = true
      this.update({ self })
      this.log(`joined room ${membership.room} as ${self}`)
      // Paused or hidden before the join came back: the dashboard lists us as away, not loading.
      if (this.away) this.platform.signaling.away?.(this.snap.away ?? 'paused')
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

  /** Newest announcement seen, even before our join ack arrived. */
  private latestMembership: MembershipAnnouncement | null = null

  private onMembership(m: MembershipAnnouncement): void {
    if (!this.latestMembership || m.epoch >= this.latestMembership.epoch || m.run !== this.latestMembership.run) this.latestMembership = m
    try {
      // Announcements can arrive before our join ack; start() replays the latest one after it.
      if (!this.snap.self) return
      const prev = this.membership
      this.membership = m
      this.paused = m.paused
      this.update({ peers: [...m.peers], run: m.run, config: m.config })
      // A new run empties the roster: everyone reloads and re-enters when ready (rooms.ts).
      if (prev && prev.run !== m.run && !m.peers.includes(this.snap.self)) this.pending = true
      // While away a roster that still lists us is one sent before the room saw our 'away'.
      if (this.pending && !this.away && m.peers.includes(this.snap.self)) {
        this.pending = false
        for (const r of this.readyWaiters.splice(0)) r()
      }
      if (!this.pending && !m.peers.includes(this.snap.self)) {
        // Not in the roster any more (a kick also disconnects us; see onRemoved): join again
        // rather than train alone; the algorithm bootstraps from the others (§9.3).
        void this.rejoin('no longer in the roster')
        return
      }
      const mesh = this.mesh
      if (mesh) mesh.updateMembership({ epoch: m.epoch, peers: m.peers, roles: m.roles })
      const newRun = !prev || prev.run !== m.run || JSON.stringify(prev.config) !== JSON.stringify(m.config)
      if (newRun) this.restartRun()
      else if (!m.paused) this.wake?.()
      this.update({ diverged: this.divergenceView(m) })
      if (m.paused) this.update({ stage: m.diverged || this.localDivergence ? 'diverged' : 'paused' })
    } catch (e) {
      this.log(`membership error: ${(e as Error).message}`)
    }
  }

  private rejoining = false
  private lastSnapshot = 0
  /** Joined but not yet in the roster: loading data and model (see SignalingPort.ready). */
  private pending = false
  private readyWaiters: Array<() => void> = []

  /** Tells the room we can train and waits until the roster includes us (re-asking on a deadline). */
  private async becomeReady(signal: AbortSignal): Promise<void> {
    // An aborted run (new run, leave) just returns: the caller checks `signal`, and throwing
    // here would end the whole session as failed.
    while (this.pending && !signal.aborted) {
      // A paused or hidden tab (e.g. reloaded for a new run meanwhile) enters only once back.
      if (this.away) {
        this.update({ stage: 'paused' })
        await this.untilBack(signal)
        continue
      }
      // Waiter first: a port may answer synchronously (the membership arrives inside ready()).
      const arrived = new Promise<void>((r) => this.readyWaiters.push(r))
      this.platform.signaling.ready()
      // Named, cancellable wait; a lost 'ready' (reconnect in between) is simply sent again.
      await Promise.race([arrived, sleep(READY_RETRY_MS, signal).catch(() => {})])
    }
  }

  /** Joins again under a new peer id and restarts the run from the swarm's state (§9.3). */
  private async rejoin(reason: string): Promise<void> {
    if (this.rejoining || this.stop.signal.aborted) return
    this.rejoining = true
    this.log(`rejoining: ${reason}`)
    this.runAbort?.abort()
    // Announcements from before this join describe a roster we are no longer in (we left, or the
    // server restarted): one listing us must not count as "already entered" below.
    this.latestMembership = null
    try {
      await sleep(500 + Math.random() * 1000, this.stop.signal)
      let joined: Awaited<ReturnType<SignalingPort['join']>>
      for (;;) {
        try {
          joined = await this.platform.signaling.join({ room: this.opts.room, name: this.opts.name, agent: this.platform.agent })
          break
        } catch (e) {
          // An evicted peer sits out a server-set cooldown; anything else is fatal below.
          if (!(e instanceof JoinRejectedError) || e.retryAfterMs === null) throw e
          this.log(`the room asks this tab to wait ${Math.ceil(e.retryAfterMs / 1000)} s before rejoining`)
          this.update({ stage: 'connecting' })
          await sleep(e.retryAfterMs + 100 + Math.random() * 500, this.stop.signal)
        }
      }
      const { self, membership } = joined
      this.pending = true
      this.update({ self })
      if (this.away) this.platform.signaling.away?.(this.snap.away ?? 'paused')
      this.membership = null // force a fresh run: new id, new mesh, bootstrap from peers
      this.rejoining = false
      // Set by onMembership while we awaited the join (TypeScript cannot see that).
      const latest = this.latestMembership as MembershipAnnouncement | null
      this.onMembership(latest && latest.peers.includes(self) ? latest : membership)
    } catch (e) {
      this.rejoining = false
      if (!this.stop.signal.aborted) this.fail(e)
    }
  }

  private onCommand(c: PeerCommand): void {
    switch (c.type) {
      case 'slow':
        this.slowFactor = c.factor
        this.update({ faults: { ...this.snap.faults, slowFactor: c.factor } })
        this.log(c.factor > 1 ? `host slowed this tab down ×${c.factor}` : 'host restored this tab\'s speed')
        this.maybeReport(true)
        break
      case 'latency':
        this.latencyMs = c.ms
        this.mesh?.setLatency(c.ms)
        this.update({ faults: { ...this.snap.faults, latencyMs: c.ms } })
        this.log(c.ms > 0 ? `host added ${c.ms} ms latency to this tab's links` : 'host removed the added latency')
        this.maybeReport(true)
        break
      case 'disconnect':
        this.dropAndRejoin()
        break
      case 'restore-checkpoint':
        this.restartRun()
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
   * and onReconnect rejoins under a new id, bootstrapping from the swarm. A port that cannot drop
   * its connection only gets its links rebuilt (same id, still in the roster).
   */
  private dropAndRejoin(): void {
    if (this.stop.signal.aborted) return
    this.log('the host disconnected this tab: links dropped, rejoining by itself')
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
        this.log(`could not drop the connection: ${(e as Error).message}`)
      }
    }
    void this.rejoin('disconnected by the host')
  }

  /**
   * Whether to start from the room checkpoint: it exists and nobody else in the roster has
   * reported progress past it — after a server restart every tab that comes back starts over at
   * step 0, however many come back together; in a running swarm the others are past it and the
   * algorithm's bootstrap (§9.3) takes their newer state instead.
   */
  private async shouldResume(m: MembershipAnnouncement, self: string, ownProgress: number): Promise<boolean> {
    if (!this.platform.fetchCheckpoint) return false
    if (!this.platform.fetchRoomProgress) return m.peers.length === 1 && ownProgress === 0
    const p = await this.platform.fetchRoomProgress(m.room)
    if (p.checkpointStep === null) return false
    const others = p.peers.filter((x) => x.id !== self && m.peers.includes(x.id))
    const furthest = Math.max(ownProgress, ...others.map((x) => x.globalStep))
    if (furthest >= p.checkpointStep) this.log(`checkpoint (step ${p.checkpointStep}) not used: the swarm is at step ${furthest}`)
    return furthest < p.checkpointStep
  }

  private restartRun(keepTrainer = false): void {
    const prevLoop = this.loopDone
    this.runAbort?.abort()
    this.wake?.()
    const ctl = new AbortController()
    this.runAbort = ctl
    this.loopDone = prevLoop.then(() => this.runLoop(ctl.signal, keepTrainer)).catch((e) => this.fail(e))
  }

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
    const kept = keepTrainer && this.trainer && this.trainerFor === JSON.stringify(config) ? this.trainer : null
    // Our own progress only counts when our model is the one we trained (see shouldResume).
    const ownProgress = kept ? this.snap.globalStep : 0
    let trainer: Trainer
    let shard: { index: number; count: number; seed: number }
    if (kept && this.trainerShard) {
      trainer = kept
      shard = this.trainerShard
    } else {
      this.trainer?.dispose()
      this.trainer = null
      this.update({ stage: 'loading', step: 0, globalStep: 0, loss: null, accuracy: null, dataProgress: 0 })
      // Pending joiners take the next roster slot for their shard.
      const inRoster = m.peers.includes(self)
      const index = inRoster ? m.peers.indexOf(self) : m.peers.length
      shard = { index, count: Math.max(1, m.peers.length + (inRoster ? 0 : 1)), seed: config.seed ^ hashSeed(self) }
      trainer = await this.platform.prepare(config, shard, (f) => this.update({ dataProgress: f }))
      if (signal.aborted) return trainer.dispose()
      const thread = trainer.computeThread ?? 'main'
      this.update({ computeThread: thread })
      const here = this.platform.agent === 'browser' ? 'the page thread' : 'the main thread'
      this.log(`model runs on ${thread === 'worker' ? 'a worker thread' : here}${trainer.computeNote ? ` (${trainer.computeNote})` : ''}`)
      this.trainer = trainer
      this.trainerFor = JSON.stringify(config)
      this.trainerShard = shard
    }
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
    // Resume from the room checkpoint when the swarm is not past it (server restart, everyone left).
    if (this.platform.fetchCheckpoint) {
      try {
        const cp = (await this.shouldResume(current, self, ownProgress)) ? await this.platform.fetchCheckpoint(current.room) : null
        if (cp && cp.schemaHash === trainer.compute.schemaHash && cp.params.length === trainer.compute.paramCount) {
          await trainer.compute.writeParams(cp.params)
          mesh.clock.advance(cp.step)
          this.log(`resumed from the room checkpoint at step ${cp.step}`)
        }
      } catch (e) {
        this.log(`checkpoint not loaded: ${(e as Error).message}`)
      }
    }
    const hogwild = config.algorithm === 'lap-sgd' && this.platform.createHogwild
      ? await this.platform.createHogwild(config, trainer, shard)
      : undefined
    const factory = ALGORITHM_FACTORIES[config.algorithm]
    const instance = await factory({
      mesh, compute: trainer.compute, config, signal, hogwild,
      log: (event, detail) => this.log(describeEvent(event, detail)),
      now: () => performance.now(),
    })
    if (signal.aborted) {
      instance.dispose()
      return
    }
    this.instance = instance
    this.log(`training ${config.algorithm} on ${config.topology}, ${config.dataset}/${config.model}`)
    this.rateWindow = []
    let step = 0
    let samples = 0
    let lastLoss: number | null = null
    let lastConsensus: number | null = null
    this.lastSnapshot = 0
    const detector = new DivergenceDetector()
    this.localDivergence = null
    this.update({ diverged: this.divergenceView(current) })
    while (!signal.aborted && !this.stop.signal.aborted) {
      if (this.paused || this.userPaused || this.localDivergence) {
        this.update({ stage: this.localDivergence || this.membership?.diverged ? 'diverged' : 'paused' })
        this.maybeReport(true)
        await new Promise<void>((r) => {
          this.wake = r
          setTimeout(r, 1000)
        })
        continue
      }
      const t0 = performance.now()
      let report: StepReport
      try {
        report = await instance.step()
        // A step that ends after its run was aborted (rejoin, new run) must not report: the
        // report would go out under our new peer id with the old run's step.
        if (signal.aborted || this.stop.signal.aborted) break
      } catch (e) {
        if (signal.aborted || this.stop.signal.aborted) break
        if (isDeadline(e)) {
          this.log(`step deadline passed: ${(e as Error).message}`)
          continue
        }
        // A model that blew up fails where its parameters are written (non-finite values are
        // refused): that is divergence, not a crash, and the tab stays in the room.
        const params = await instance.evalParams().catch(() => null)
        if (/non-finite|NaN|Infinity/i.test((e as Error).message ?? '') || (params && !allFinite(params))) {
          this.diverge(detector.nonFinite(this.snap.globalStep, `the model is no longer finite (${(e as Error).message.slice(0, 120)})`), config)
          continue
        }
        throw e
      }
      const dt = performance.now() - t0
      step = report.step
      samples += report.samples
      if (this.slowFactor > 1) await sleep(dt * (this.slowFactor - 1), signal).catch(() => {})
      const stalled = dt > STALL_FACTOR * config.stepDeadlineMs
      if (Number.isFinite(report.loss)) lastLoss = report.loss
      if (report.consensus !== undefined) lastConsensus = report.consensus
      const verdict = detector.observe(report.loss, report.globalStep)
      if (verdict) {
        this.update({ step, globalStep: report.globalStep, loss: lastLoss ?? this.snap.loss })
        this.diverge(verdict, config)
        continue
      }
      const now = performance.now()
      const finishing = !!this.opts.maxSteps && step >= this.opts.maxSteps
      // The snapshot (UI, reports) is refreshed at most every SNAPSHOT_INTERVAL_MS: building it
      // (mesh stats, neighbours, rates, listeners) every step cost a small model ~40 % of its
      // steps/s (bench/overhead.ts). Stage changes and the last step refresh at once.
      if (stalled || finishing || this.snap.stage !== 'training' || now - this.lastSnapshot >= SNAPSHOT_INTERVAL_MS) {
        this.lastSnapshot = now
        const st = mesh.stats()
        this.rateWindow.push({ t: now, step, samples })
        while (this.rateWindow.length > 2 && this.rateWindow[0].t < now - 5000) this.rateWindow.shift()
        const first = this.rateWindow[0]
        const last = this.rateWindow[this.rateWindow.length - 1]
        const span = (last.t - first.t) / 1000
        this.update({
          stage: stalled ? 'stalled' : 'training', step, globalStep: report.globalStep,
          loss: lastLoss ?? this.snap.loss,
          lr: report.lr, h: report.h ?? null, consensus: lastConsensus ?? this.snap.consensus,
          samples, bytesSent: st.bytesSent, bytesReceived: st.bytesReceived,
          stepsPerSec: span > 0 ? (last.step - first.step) / span : 0,
          samplesPerSec: span > 0 ? (last.samples - first.samples) / span : 0,
          neighbors: this.currentNeighbours(report.globalStep),
        })
      }
      await this.maybeEvaluate(instance, trainer)
      this.maybeReport(false)
      await this.maybeCheckpoint(instance, trainer, report.globalStep)
      if (this.opts.maxSteps && step >= this.opts.maxSteps) {
        await this.maybeEvaluate(instance, trainer, true)
        this.maybeReport(true)
        this.update({ stage: 'done' })
        break
      }
      // Yield to the event loop so signaling, data channels and the UI stay responsive — without
      // setTimeout(0), whose ≥1 ms (Node) / ≥4 ms (nested, browsers) clamp alone halved the
      // steps/s of a small model (bench/overhead.ts), and which hidden tabs throttle further.
      await yieldToEventLoop()
    }
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
    const s = this.snap
    const st = this.mesh?.stats()
    const links: Record<string, { sent: number; received: number }> = {}
    for (const [peer, l] of Object.entries(st?.perLink ?? {})) links[peer] = { sent: l.bytesSent, received: l.bytesReceived }
    const rejected = Object.values(st?.rejected ?? {}).reduce((a, b) => a + b, 0)
    // 'diverged' is this tab's own verdict; a tab the room paused for the others' shows 'paused'.
    const stage = s.stage === 'idle' ? 'loading' : s.stage === 'diverged' && !this.localDivergence ? 'paused' : s.stage
    const d = this.localDivergence
    try {
      this.platform.signaling.report({
        v: PROTOCOL_VERSION, step: s.step, globalStep: s.globalStep, loss: s.loss, accuracy: s.accuracy,
        backend: s.backend ?? 'cpu', backendReason: s.backendReason.slice(0, 200), computeThread: s.computeThread ?? undefined, samplesPerSec: s.samplesPerSec,
        stepsPerSec: s.stepsPerSec, samples: s.samples, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived,
        neighbors: s.neighbors, links, lr: s.lr, h: s.h, consensus: s.consensus, stage, rejected,
        ...(d && stage === 'diverged'
          ? { diverged: { step: Math.max(0, Math.floor(d.step)), loss: Number.isFinite(d.loss) ? d.loss : null, reason: d.reason.slice(0, 200) } }
          : {}),
        slowFactor: this.slowFactor, addedLatencyMs: this.latencyMs,
        updaters: this.snap.config?.algorithm === 'lap-sgd' ? this.snap.config.updaters : undefined,
      })
    } catch (e) {
      this.log(`report failed: ${(e as Error).message}`)
    }
  }

  private async maybeCheckpoint(instance: AlgorithmInstance, trainer: Trainer, globalStep: number): Promise<void> {
    const now = performance.now()
    const m = this.membership
    if (!m || m.peers[0] !== this.snap.self || now - this.lastCheckpoint < CHECKPOINT_INTERVAL_MS) return
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
    this.log(`training stopped at step ${v.step}: the model diverged (${v.reason}). ${divergenceHint(config)}`)
    this.update({ stage: 'diverged', diverged: { step: v.step, loss: Number.isFinite(v.loss) ? v.loss : null, reason: v.reason, hint: divergenceHint(config) } })
    this.maybeReport(true)
  }

  /** What the UI shows: the room's verdict on the run, else this tab's own, else nothing. */
  private divergenceView(m: MembershipAnnouncement): SessionSnapshot['diverged'] {
    const hint = divergenceHint(m.config)
    if (m.diverged) return { step: m.diverged.step, loss: m.diverged.loss, reason: m.diverged.reason, hint }
    const v = this.localDivergence
    return v ? { step: v.step, loss: Number.isFinite(v.loss) ? v.loss : null, reason: v.reason, hint } : null
  }

  private fail(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e)
    // Keep the stack in the console for whoever debugs this tab; the UI shows the message.
    console.error('tabswarm session error', e)
    this.log(`error: ${msg}`)
    this.update({ stage: 'error', error: msg })
    // Tell the room right away, so the dashboard shows this tab as failed instead of stale.
    this.maybeReport(true)
    // Then leave: a crashed tab left in the roster would make its neighbours wait out their
    // deadlines every step until they report it. The page keeps showing the error.
    this.shutdown(`error: ${msg}`, 'error')
  }

  private log(line: string): void {
    const stamp = new Date().toISOString().slice(11, 19)
    const log = [...this.snap.log, `${stamp} ${line}`].slice(-LOG_LINES)
    this.update({ log })
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
