import type { LinkProfileName } from '../../shared/link-conditions'
import { ALGORITHM_DESCRIPTORS, linkTopology } from '../../shared/algorithms/descriptors'
import type { Compute } from '../../shared/algorithms/types'
import { parsePartition, type RoomConfig } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import type { MembershipAnnouncement, PeerCommand } from '../../shared/protocol/signaling'
import { neighbors } from '../../shared/topology'
import { DeadlineError, sleep, type Membership, type Mesh, type MeshMessage, type PeerId, type Unsubscribe } from '../../shared/transport'
import { SignalingClient } from '../mesh/signaling-client'
import { WebRtcMesh, type WrtcImpl } from '../mesh/webrtc-mesh'
import { testSubsetOf } from '../runtime/data-loader'
import { TfCompute, uploadDataset, type DeviceData } from '../runtime/tf-compute'
import type { WorkerCompute } from '../runtime/compute-worker/host'
import type { ComputeInit } from '../runtime/compute-worker/protocol'
import type { SessionMesh, SignalingPort, Trainer } from './swarm-session'

/**
 * With an iid partition a tab downloads 1/IID_SHARDS of the training set at least (10k MNIST
 * examples): enough for a small model, and it keeps a tab's download small (≈ 8 MB).
 */
export const IID_MIN_SHARDS = 6
/** Join must be acknowledged within this (named) deadline. */
export const JOIN_DEADLINE_MS = 20_000

/** Adapts the socket.io SignalingClient to what the session needs. */
export function signalingPort(client: SignalingClient): SignalingPort {
  return {
    async join(req) {
      const ctl = new AbortController()
      const t = setTimeout(() => ctl.abort(new DeadlineError('signaling.join')), JOIN_DEADLINE_MS)
      try {
        const membershipSeen = new Promise<MembershipAnnouncement>((resolve) => {
          const off = client.on('membership', (m) => {
            off()
            resolve(m)
          })
        })
        const joined = await client.join({ room: req.room, name: req.name, agent: req.agent, role: 'volunteer' }, ctl.signal)
        // The server answers every join with the room's membership (we are not in it yet: a
        // volunteer is pending until it says ready()).
        const membership = await Promise.race([
          membershipSeen,
          new Promise<never>((_, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason), { once: true })),
        ])
        return { self: joined.self, membership }
      } finally {
        clearTimeout(t)
      }
    },
    ready: () => client.ready(),
    onCredit: (cb) => client.on('credit', cb),
    away: (reason) => client.away(reason),
    dropConnection: () => client.dropConnection(),
    onMembership: (cb) => client.on('membership', cb),
    onCommand: (cb: (c: PeerCommand) => void) => client.on('command', cb),
    onRemoved: (cb) =>
      client.on('error', (e) => {
        if (e.code === 'evicted' || e.code === 'kicked') cb(e.code)
      }),
    onReconnect: (cb) => {
      const h = () => cb()
      client.socket.io.on('reconnect', h)
      return () => void client.socket.io.off('reconnect', h)
    },
    report: (r) => client.report(r),
    checkpoint: (c) => client.checkpoint(c.step, c.schemaHash, c.params),
    close: () => {
      try {
        client.leave()
      } catch {
        /* socket already gone */
      }
      client.close()
    },
  }
}

/** Which part of the training set this peer trains on. */
export function shardRequest(config: RoomConfig, shard: { index: number; count: number; seed: number }) {
  const p = parsePartition(config.partition)
  if (p.kind === 'iid') {
    const count = Math.max(shard.count, IID_MIN_SHARDS)
    return { peerIndex: shard.index % count, peerCount: count, partition: config.partition, seed: config.seed }
  }
  return { peerIndex: shard.index, peerCount: shard.count, partition: config.partition, seed: config.seed }
}

/** The examples every peer's accuracy is measured on: the room's test subset (config testSubset). */
export function evalSubset(test: Dataset, config: Pick<RoomConfig, 'testSubset'>): Dataset {
  return testSubsetOf(test, config.testSubset)
}

/** Builds the tfjs trainer once the shard and the test prefix are on the host. */
export function makeTrainer(config: RoomConfig, train: Dataset, test: Dataset, streamSeed: number): Trainer {
  const compute = new TfCompute({ model: config.model, train, batchSize: config.batchSize, seed: config.seed, streamSeed })
  const testDev: DeviceData = uploadDataset(evalSubset(test, config))
  return {
    compute,
    train,
    computeThread: 'main',
    evaluate: (params) => compute.evaluate(testDev, params),
    dispose: () => {
      testDev.dispose()
      compute.dispose()
    },
  }
}

/**
 * makeTrainer's counterpart with the model on a worker thread (same model, data, seeds): `start`
 * is the platform's way to spawn one (worker_threads in Node, a module Web Worker in a tab).
 */
export async function makeWorkerTrainer(
  config: RoomConfig, train: Dataset, test: Dataset, streamSeed: number, backend: 'wasm' | 'cpu',
  start: (init: ComputeInit) => Promise<WorkerCompute>,
): Promise<Trainer> {
  const compute = await start({ model: config.model, train, test: evalSubset(test, config), batchSize: config.batchSize, seed: config.seed, streamSeed, backend })
  const computeNote = compute.backend !== backend ? `${backend} failed on the worker, it runs ${compute.backend}` : undefined
  return { compute, train, computeThread: 'worker', computeNote, evaluate: (p) => compute.evaluate(p), dispose: () => compute.dispose() }
}

/**
 * The peers the mesh keeps links to (the algorithm adds more via want()): the neighbours on the
 * algorithm's link topology. The all-reduce group is logically a clique, but the bandwidth-optimal
 * ring all-reduce only ever talks to the roster neighbours on either side, so that is all it
 * connects to: n links in the swarm, not n(n−1)/2.
 */
export function topologyNeighbours(config: RoomConfig) {
  const topology = linkTopology(config)
  return (m: Membership, self: PeerId): readonly PeerId[] => {
    if (!m.peers.includes(self)) return []
    const n = neighbors(topology, m.peers, self, 0, m.roles.ps)
    return [...new Set([...n.sendTo, ...n.receiveFrom])]
  }
}

/**
 * Kinds whose payloads are increments, so lossy wire codecs send them with error feedback (the
 * algorithm's descriptor says which: gradient pushes to a parameter server, SSGD's reduce-scatter
 * partial sums). Parameter messages are not increments.
 */
export function incrementKinds(config: RoomConfig): (kind: string) => boolean {
  return ALGORITHM_DESCRIPTORS[config.algorithm].messageKinds.increments
}

export function createWebRtcMesh(args: {
  self: string
  config: RoomConfig
  compute: Compute
  client: SignalingClient
  wrtc?: WrtcImpl
  /** This peer's own link profile, overriding the room's (npm run peer -- --link). */
  link?: LinkProfileName
  log?: (event: string, detail?: Record<string, unknown>) => void
  /** Fault injection seam (bad-peer tests): sees the WebRTC mesh itself. Never set in normal use. */
  tap?: (mesh: WebRtcMesh) => void
}): SessionMesh {
  const mesh = new WebRtcMesh({
    self: args.self,
    signaling: args.client,
    wrtc: args.wrtc,
    schemaHash: args.compute.schemaHash,
    config: { iceServers: args.config.iceServers, maxMessageBytes: args.config.maxMessageBytes, compression: args.config.compression, link: args.link ?? args.config.link },
    neighbours: topologyNeighbours(args.config),
    errorFeedback: incrementKinds(args.config),
    log: args.log,
  })
  args.tap?.(mesh)
  return withSessionControls(mesh, () => void mesh.close())
}

/**
 * Adds the session's fault-injection knob (artificial latency on every outgoing message, for
 * the host's "add latency" control) around any Mesh.
 */
export function withSessionControls(mesh: Mesh, close: () => void): SessionMesh {
  let latencyMs = 0
  const wrapped: SessionMesh = {
    get self() {
      return mesh.self
    },
    get clock() {
      return mesh.clock
    },
    membership: () => mesh.membership(),
    onMembership: (cb): Unsubscribe => mesh.onMembership(cb),
    async send(to: PeerId, msg: MeshMessage, signal?: AbortSignal) {
      if (latencyMs > 0) await sleep(latencyMs, signal)
      return mesh.send(to, msg, signal)
    },
    receive: (f, s) => mesh.receive(f, s),
    discard: (f) => mesh.discard(f),
    want: (p) => mesh.want(p),
    reportSuspect: (p, r) => mesh.reportSuspect(p, r),
    rejectFrom: (p, r) => mesh.rejectFrom?.(p, r),
    // Without it an SSGD all-reduce owner under fp16/int8 would keep its unrounded chunk while
    // everyone else holds the decoded one, and the replicas would drift until the next resync.
    ...(mesh.wireImage ? { wireImage: (kind: string, data: Float32Array) => mesh.wireImage!(kind, data) } : {}),
    stats: () => mesh.stats(),
    // The WebRTC mesh follows the signaling client's membership events itself.
    updateMembership: () => {},
    setLatency: (ms) => {
      latencyMs = Math.max(0, ms)
    },
    close,
  }
  return wrapped
}
