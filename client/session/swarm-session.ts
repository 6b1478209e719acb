import type { AlgorithmInstance, Compute, HogwildPool, StepReport } from '../../shared/algorithms/types'
import type { RoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import { JoinRejectedError, type BackendName, type MembershipAnnouncement, type PeerCommand, type PeerReport } from '../../shared/protocol/signaling'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'
import { isDeadline, sleep, yieldToEventLoop, type Membership, type Mesh, type Unsubscribe } from '../../shared/transport'
import { ALGORITHM_FACTORIES } from '../../shared/algorithms/index'
import { neighbors } from '../../shared/topology'
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
    stage: 'idle', room, self: null, config: null, run: 0, backend: null, backendReason: '', dataProgress: 0,
    step: 0, globalStep: 0, loss: null, accuracy: null, samplesPerSec: 0, stepsPerSec: 0, samples: 0,
    bytesSent: 0, bytesReceived: 0, neighbors: [], peers: [], lr: null, h: null, consensus: null, error: null, log: [],
  }
}

function hashSeed(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
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
  private slowFactor = 1
  private membership: MembershipAnnouncement | null = null
  private mesh: SessionMesh | null = null
  private instance: AlgorithmInstance | null = null
  private trainer: Trainer | null = null
  private loopDone: Promise<void> = Promise.resolve()
  private latencyMs = 0
  private wake: (() => void) | null = null
  private unsubs: Unsubscribe[] = []
  private lastReport = 0
  private lastEval = 0
  private lastEvalMs = 0
  private lastCheckpoint = 0
  private rateWindow: { t: number; step: number; samples: number }[] = []

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

  pause(): void {
    this.userPaused = true
    this.update({ stage: 'paused' })
  }

  resume(): void {
    this.userPaused = false
    this.wake?.()
  }

  /** Graceful leave: hand the model to neighbours once (§9.4), then disconnect. */
  async leave(): Promise<void> {
    if (this.stop.signal.aborted) return
    try {
      await Promise.race([this.instance?.leave(), sleep(1500)])
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
      if (this.pending && m.peers.includes(this.snap.self)) {
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
      if (m.paused) this.update({ stage: 'paused' })
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
      this.membership = null // force a fresh run: new id, new mesh, bootstrap from peers
      this.rejoining = false
      this.onMembership(this.latestMembership && this.latestMembership.peers.includes(self) ? this.latestMembership : membership)
    } catch (e) {
      this.rejoining = false
      if (!this.stop.signal.aborted) this.fail(e)
    }
  }

  private onCommand(c: PeerCommand): void {
    switch (c.type) {
      case 'slow':
        this.slowFactor = c.factor
        this.log(`host slowed this tab down ×${c.factor}`)
        break
      case 'latency':
        this.latencyMs = c.ms
        this.mesh?.setLatency(c.ms)
        this.log(`host added ${c.ms} ms latency to this tab's links`)
        break
      case 'disconnect':
        this.log('host disconnected this tab')
        this.shutdown('disconnected by host')
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

  private restartRun(): void {
    const prevLoop = this.loopDone
    this.runAbort?.abort()
    this.wake?.()
    const ctl = new AbortController()
    this.runAbort = ctl
    this.loopDone = prevLoop.then(() => this.runLoop(ctl.signal)).catch((e) => this.fail(e))
  }

  private async runLoop(signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.stop.signal.aborted) return
    const m = this.membership!
    const self = this.snap.self!
    const config = m.config
    this.instance?.dispose()
    this.instance = null
    this.mesh?.close()
    this.mesh = null
    this.trainer?.dispose()
    this.trainer = null
    this.update({ stage: 'loading', step: 0, loss: null, accuracy: null, dataProgress: 0 })
    // Pending joiners take the next roster slot for their shard.
    const inRoster = m.peers.includes(self)
    const index = inRoster ? m.peers.indexOf(self) : m.peers.length
    const shard = { index, count: Math.max(1, m.peers.length + (inRoster ? 0 : 1)), seed: config.seed ^ hashSeed(self) }
    const trainer = await this.platform.prepare(config, shard, (f) => this.update({ dataProgress: f }))
    if (signal.aborted) return trainer.dispose()
    this.trainer = trainer
    this.update({ dataProgress: 1, stage: 'connecting' })
    await this.becomeReady(signal)
    if (signal.aborted) return
    const current = this.membership!
    const mesh = this.platform.createMesh({
      self, membership: { epoch: current.epoch, peers: current.peers, roles: current.roles }, config, compute: trainer.compute,
    })
    if (this.latencyMs) mesh.setLatency(this.latencyMs)
    this.mesh = mesh
    // Resume from the room checkpoint when we are the only peer (server restart, everyone left).
    if (current.peers.length === 1 && this.platform.fetchCheckpoint) {
      try {
        const cp = await this.platform.fetchCheckpoint(current.room)
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
      log: (event, detail) => this.log(detail ? `${event} ${JSON.stringify(detail)}` : event),
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
    while (!signal.aborted && !this.stop.signal.aborted) {
      if (this.paused || this.userPaused) {
        this.update({ stage: 'paused' })
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
      } catch (e) {
        if (signal.aborted || this.stop.signal.aborted) break
        if (isDeadline(e)) {
          this.log(`step deadline passed: ${(e as Error).message}`)
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
    this.update({ accuracy: r.accuracy })
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
    const stage = s.stage === 'idle' ? 'loading' : s.stage
    try {
      this.platform.signaling.report({
        v: PROTOCOL_VERSION, step: s.step, globalStep: s.globalStep, loss: s.loss, accuracy: s.accuracy,
        backend: s.backend ?? 'cpu', backendReason: s.backendReason.slice(0, 200), samplesPerSec: s.samplesPerSec,
        stepsPerSec: s.stepsPerSec, samples: s.samples, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived,
        neighbors: s.neighbors, links, lr: s.lr, h: s.h, consensus: s.consensus, stage, rejected,
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
    this.platform.signaling.checkpoint({
      step: globalStep, schemaHash: trainer.compute.schemaHash, params: new Uint8Array(params.buffer.slice(0)),
    })
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
