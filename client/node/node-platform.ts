import wrtc from '@roamhq/wrtc'
import type { Compute } from '../../shared/algorithms/types'
import type { BackendName } from '../../shared/protocol/signaling'
import { SignalingClient } from '../mesh/signaling-client'
import type { WrtcImpl } from '../mesh/webrtc-mesh'
import { fetchDataset } from '../runtime/data-loader'
import { createNodeHogwildPool } from '../runtime/hogwild/node-pool'
import { setupNodeBackend } from '../runtime/node-backend'
import { fetchRoomCheckpoint } from '../session/checkpoint'
import { createWebRtcMesh, makeTrainer, shardRequest, signalingPort } from '../session/platform'
import { SwarmSession, type SessionPlatform } from '../session/swarm-session'

/**
 * A headless Node volunteer: same protocol and algorithm code as a tab, with @roamhq/wrtc for
 * WebRTC and tfjs on the wasm (or cpu) backend. Run it inside a network namespace or on a LAN:
 * wrtc has no bind option (../shared/BROWSER-TESTING.md).
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
}): SwarmSession {
  const client = new SignalingClient(opts.server, { socket: { transports: ['websocket'] } })
  const platform: SessionPlatform = {
    agent: 'node',
    serverUrl: opts.server,
    signaling: signalingPort(client),
    async selectBackend(forced?: BackendName) {
      const want = forced === 'cpu' || opts.backend === 'cpu' ? 'cpu' : 'wasm'
      const got = await setupNodeBackend(want)
      return { backend: got, reason: got === want ? `Node peer: ${got} requested` : `Node peer: ${want} unavailable, using ${got}` }
    },
    async prepare(config, shard) {
      const train = await fetchDataset(config.dataset, 'train', { baseUrl: opts.server, shard: shardRequest(config, shard) })
      const test = await fetchDataset(config.dataset, 'test', { baseUrl: opts.server })
      const trainer = makeTrainer(config, train, test, shard.seed)
      return opts.transformCompute ? { ...trainer, compute: opts.transformCompute(trainer.compute) } : trainer
    },
    createMesh: ({ self, config, compute }) =>
      createWebRtcMesh({ self, config, compute, client, wrtc: wrtc as unknown as WrtcImpl }),
    async createHogwild(config, trainer, shard) {
      return createNodeHogwildPool({
        model: config.model, train: trainer.train,
        paramCount: trainer.compute.paramCount, initial: await trainer.compute.readParams(),
        batchSize: config.batchSize, seed: shard.seed, updaters: config.updaters,
      })
    },
    fetchCheckpoint: (room) => fetchRoomCheckpoint(opts.server, room),
  }
  return new SwarmSession(platform, { room: opts.room, name: opts.name, backend: opts.backend, maxSteps: opts.maxSteps })
}
