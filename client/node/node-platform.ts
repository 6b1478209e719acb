import { setMaxListeners } from 'node:events'
import type { Compute } from '../../shared/algorithms/types'
import type { BackendName } from '../../shared/protocol/signaling'
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
import { SwarmSession, type SessionMesh, type SessionPlatform, type Trainer } from '../session/swarm-session'

/**
 * Where a Node volunteer's tfjs model runs. 'worker' (default): on its own worker thread, so
 * the thread that owns the data channels stays free to answer neighbours while a wasm gradient
 * runs (client/runtime/compute-worker/host.ts says why that matters). 'main': on the session's
 * thread, like a tab without workers (kept to measure the difference).
 */
export type ComputeThread = 'worker' | 'main'
export const COMPUTE_THREADS: readonly ComputeThread[] = ['worker', 'main']

// A step's deadline signal legitimately has one waiter per peer it fans out to (an all-reduce
// group or state request to up to MAX_PEERS_PER_ROOM − 1 peers); Node's default of 10 abort
// listeners per signal then prints a false "possible leak" warning in large rooms.
setMaxListeners(256)

/**
 * A headless Node volunteer: same protocol and algorithm code as a tab, with a Node WebRTC stack
 * (@roamhq/wrtc by default, or node-datachannel: client/mesh/node-webrtc.ts) and tfjs on the wasm
 * (or cpu) backend. Run it inside a network namespace or on a LAN: wrtc has no bind option;
 * node-datachannel can bind one address (`webrtc.bindAddress`) (../shared/BROWSER-TESTING.md).
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
  /** Fault injection below the Mesh interface: sees each WebRTC mesh the session creates. */
  tapWebRtcMesh?: (m: WebRtcMesh) => void
  /** Which Node WebRTC stack carries the mesh (default @roamhq/wrtc). */
  webrtc?: NodeWebRtcOptions
  /** Default 'worker', or the TABSWARM_COMPUTE_THREAD environment variable. */
  computeThread?: ComputeThread
}): SwarmSession {
  const computeThread = opts.computeThread ?? parseComputeThread(process.env.TABSWARM_COMPUTE_THREAD)
  let backend: 'wasm' | 'cpu' = opts.backend ?? 'wasm'
  // createMesh is synchronous, so the stack is loaded (lazily: only the chosen one) in the async
  // steps before it. selectBackend comes first, so a stack that fails to load fails the session
  // before any data is downloaded.
  let wrtc: WrtcImpl | null = null
  const loadWrtc = async () => (wrtc ??= await loadNodeWebRtc(opts.webrtc ?? {}))
  const client = new SignalingClient(opts.server, { socket: { transports: ['websocket'] } })
  const platform: SessionPlatform = {
    agent: 'node',
    serverUrl: opts.server,
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
      const train = await fetchDataset(config.dataset, 'train', { baseUrl: opts.server, shard: shardRequest(config, shard) })
      const test = await fetchDataset(config.dataset, 'test', { baseUrl: opts.server })
      const trainer = computeThread === 'worker' ? await makeWorkerTrainer(config, train, test, shard.seed, backend, startNodeWorkerCompute) : makeTrainer(config, train, test, shard.seed)
      return opts.transformCompute ? { ...trainer, compute: opts.transformCompute(trainer.compute) } : trainer
    },
    createMesh: ({ self, config, compute }) => {
      if (!wrtc) throw new Error('WebRTC stack not loaded (createMesh before prepare)')
      const mesh = createWebRtcMesh({ self, config, compute, client, wrtc, tap: opts.tapWebRtcMesh })
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
  if (v === undefined || v === '') return 'worker'
  if (v === 'worker' || v === 'main') return v
  throw new Error(`TABSWARM_COMPUTE_THREAD must be one of ${COMPUTE_THREADS.join(', ')}, got ${JSON.stringify(v)}`)
}

