import type { LinkProfileName } from '../../shared/link-conditions'
import { setMaxListeners } from 'node:events'
import type { Compute } from '../../shared/algorithms/types'
import type { BackendName } from '../../shared/protocol/signaling'
import { loadNodeIdentity } from '../identity/node-identity'
import { SignalingClient } from '../mesh/signaling-client'
import { loadNodeWebRtc, type NodeWebRtcOptions } from '../mesh/node-webrtc'
import type { WebRtcMesh, WrtcImpl } from '../mesh/webrtc-mesh'
import { fetchDataset } from '../runtime/data-loader'
import { createNodeHogwildPool } from '../runtime/hogwild/node-pool'
import { setupNodeBackend } from '../runtime/node-backend'
import { fetchRoomCheckpoint } from '../session/checkpoint'
import { fetchRoomProgress } from '../session/room-progress'
import { startNodeWorkerCompute } from '../runtime/compute-worker/node'
import { createWebRtcMesh, makeTrainer, makeWorkerTrainer, shardRequest, signalingPort } from '../session/platform'
import type { RoomConfig } from '../../shared/config'
import { DATASET_SHAPES, forwardMacsPerExample } from '../../shared/model-shapes'
import { makeAttacker, parseAttack, type Attacker } from '../../shared/testing/attacks'
import { SwarmSession, type SessionMesh, type SessionPlatform, type Trainer } from '../session/swarm-session'

/**
 * Where a Node volunteer's tfjs model runs. 'worker': on its own worker thread, so the thread
 * that owns the data channels stays free to answer neighbours while a wasm gradient runs
 * (client/runtime/compute-worker/host.ts says why that matters). 'main': on the session's
 * thread, like a tab without workers. 'auto' (default): per room, by the size of a minibatch
 * gradient (autoComputeThread below).
 */
export type ComputeThread = 'auto' | 'worker' | 'main'
export const COMPUTE_THREADS: readonly ComputeThread[] = ['auto', 'worker', 'main']

/**
 * Forward multiply-accumulates per minibatch below which `auto` keeps the model on the main
 * thread. A worker thread exists so the data channels answer during a gradient; a gradient this
 * small (the mlp at batch 32: 3.3M, ~5 ms on wasm here) blocks them for less than a message
 * takes to cross, while the thread hops of every step cost more than they save. Measured
 * (docs/benchmarks-history.md, 2026-12-07): mlp on MNIST, 2 peers, main vs worker thread,
 * overhead local-sgd 31.6 vs 47.6 %, ad-psgd 46.5 vs 56.8 % (dpsgd 79.6 vs 84.2 %, measured
 * before WorkerCompute stopped cloning dpsgd's whole arena on every write); 16 peers
 * (mlp, synthetic) 1.2–1.7× the steps/s. The cnn at batch 32 (10.7M, ~22 ms) stays on the
 * worker, where the measurements were mixed and responsiveness decides.
 */
export const MAIN_THREAD_MAX_MACS = 8e6

/** Where `auto` puts a room's model: the main thread for small minibatch gradients, else a worker. */
export function autoComputeThread(config: Pick<RoomConfig, 'model' | 'dataset' | 'batchSize'>): 'worker' | 'main' {
  const macs = forwardMacsPerExample(config.model, DATASET_SHAPES[config.dataset]) * config.batchSize
  return macs < MAIN_THREAD_MAX_MACS ? 'main' : 'worker'
}

// A step's deadline signal legitimately has one waiter per peer it fans out to (an all-reduce
// group or state request to up to MAX_PEERS_PER_ROOM − 1 peers); Node's default of 10 abort
// listeners per signal then prints a false "possible leak" warning in large rooms.
setMaxListeners(256)

/**
 * A headless Node volunteer: same protocol and algorithm code as a tab, with a Node WebRTC stack
 * (@roamhq/wrtc by default, or node-datachannel: client/mesh/node-webrtc.ts) and tfjs on the wasm
 * (or cpu) backend. Run it inside a network namespace or on a LAN: wrtc has no bind option;
 * node-datachannel can bind one address (`webrtc.bindAddress`).
 */
export function createNodeSession(opts: {
  server: string
  room: string
  name?: string
  backend?: 'wasm' | 'cpu'
  maxSteps?: number
  log?: (line: string) => void
  /**
   * Fault injection (tests, classroom demos of Byzantine hygiene): wraps the local compute, e.g.
   * to make this volunteer publish NaN or wrong-length parameters. Never set in normal use.
   */
  transformCompute?: (c: Compute) => Compute
  /** Fault injection on the wire: wraps the mesh, e.g. to poison only what this volunteer sends. */
  transformMesh?: (m: SessionMesh) => SessionMesh
  /**
   * Testing only: makes this volunteer hostile with an attack of shared/testing/attacks.ts
   * (`NAME` or `NAME:VALUE`): poisoned data, gradients or outgoing models, a poisoned clock or
   * a message flood, through the same hooks as transformCompute / transformMesh (applied first).
   */
  attack?: string
  /** Fault injection below the Mesh interface: sees each WebRTC mesh the session creates. */
  tapWebRtcMesh?: (m: WebRtcMesh) => void
  /** Which Node WebRTC stack carries the mesh (default @roamhq/wrtc). */
  webrtc?: NodeWebRtcOptions
  /** Default 'auto' (autoComputeThread, per room config), or the TABSWARM_COMPUTE_THREAD environment variable. */
  computeThread?: ComputeThread
  /**
   * A file holding this volunteer's key pair (created on first use): its peer id then survives
   * restarts, so the room's tenure and cooldowns follow it. Default: the TABSWARM_IDENTITY
   * environment variable, else a key pair for this process only (stable across reconnects).
   */
  identityFile?: string | null
  /** This peer's own link profile (shared/link-conditions.ts), overriding the room's. */
  link?: LinkProfileName
}): SwarmSession {
  const computeThread = opts.computeThread ?? parseComputeThread(process.env.TABSWARM_COMPUTE_THREAD)
  const attack = opts.attack ? parseAttack(opts.attack) : null
  /** The attacker of the current room config (prepare makes it; the mesh created next uses it). */
  let attacker: Attacker | null = null
  let backend: 'wasm' | 'cpu' = opts.backend ?? 'wasm'
  // createMesh is synchronous, so the stack is loaded (lazily: only the chosen one) in the async
  // steps before it. selectBackend comes first, so a stack that fails to load fails the session
  // before any data is downloaded.
  let wrtc: WrtcImpl | null = null
  const loadWrtc = async () => (wrtc ??= await loadNodeWebRtc(opts.webrtc ?? {}))
  const identityFile = opts.identityFile !== undefined ? opts.identityFile : process.env.TABSWARM_IDENTITY || null
  const client = new SignalingClient(opts.server, { socket: { transports: ['websocket'] }, identity: loadNodeIdentity(identityFile), room: opts.room })
  const platform: SessionPlatform = {
    agent: 'node',
    serverUrl: opts.server,
    ...(opts.link ? { link: opts.link } : {}),
    signaling: signalingPort(client),
    async selectBackend(forced?: BackendName) {
      await loadWrtc()
      const want = forced === 'cpu' || opts.backend === 'cpu' ? 'cpu' : 'wasm'
      const got = await setupNodeBackend(want)
      backend = got
      return { backend: got, reason: got === want ? `Node peer: ${got} requested` : `Node peer: ${want} unavailable, using ${got}` }
    },
    async prepare(config, shard) {
      await loadWrtc()
      attacker = attack ? makeAttacker(attack, { algorithm: config.algorithm, seed: shard.seed }) : null
      const fetched = await fetchDataset(config.dataset, 'train', { baseUrl: opts.server, shard: shardRequest(config, shard) })
      const train = attacker ? attacker.data(fetched) : fetched
      const test = await fetchDataset(config.dataset, 'test', { baseUrl: opts.server, testSubset: config.testSubset })
      const thread = computeThread === 'auto' ? autoComputeThread(config) : computeThread
      const trainer = thread === 'worker' ? await makeWorkerTrainer(config, train, test, shard.seed, backend, startNodeWorkerCompute) : makeTrainer(config, train, test, shard.seed)
      const compute = attacker ? attacker.compute(trainer.compute) : trainer.compute
      return opts.transformCompute ? { ...trainer, compute: opts.transformCompute(compute) } : compute === trainer.compute ? trainer : { ...trainer, compute }
    },
    createMesh: ({ self, config, compute }) => {
      if (!wrtc) throw new Error('WebRTC stack not loaded (createMesh before prepare)')
      const created = createWebRtcMesh({ self, config, compute, client, wrtc, tap: opts.tapWebRtcMesh, ...(opts.link ? { link: opts.link } : {}) })
      attacker ??= attack ? makeAttacker(attack, { algorithm: config.algorithm, seed: 0 }) : null
      const mesh = attacker ? attacker.mesh(created) : created
      return opts.transformMesh ? opts.transformMesh(mesh) : mesh
    },
    async createHogwild(config, trainer, shard) {
      return createNodeHogwildPool({
        model: config.model, train: trainer.train,
        paramCount: trainer.compute.paramCount, initial: await trainer.compute.readParams(),
        batchSize: config.batchSize, seed: shard.seed, updaters: config.updaters,
      })
    },
    fetchCheckpoint: (room) => fetchRoomCheckpoint(opts.server, room),
    fetchRoomProgress: (room) => fetchRoomProgress(opts.server, room),
  }
  return new SwarmSession(platform, { room: opts.room, name: opts.name, backend: opts.backend, maxSteps: opts.maxSteps })
}

function parseComputeThread(v: string | undefined): ComputeThread {
  if (v === undefined || v === '') return 'auto'
  if (v === 'auto' || v === 'worker' || v === 'main') return v
  throw new Error(`TABSWARM_COMPUTE_THREAD must be one of ${COMPUTE_THREADS.join(', ')}, got ${JSON.stringify(v)}`)
}

