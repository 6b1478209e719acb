import { parseRoomConfig, type RoomConfig } from '../config'
import type { AlgorithmFactory, AlgorithmInstance, Compute, StepReport } from '../algorithms/types'
import type { LsqShard } from './lsq-compute'
import type { MemoryMesh, MemoryNetwork } from './memory-mesh'

/**
 * What the algorithm tests (shared/algorithms/*.test.ts, the session and simulator tests) share:
 * building a room config, starting peers over the in-memory mesh, stepping them. Each test file
 * keeps its own defaults (deadlines, algorithm) and its own helpers where they differ.
 */

/**
 * A validated room config for a test: the algorithm's defaults (parseRoomConfig), a constant
 * schedule without warmup (so a test's first steps already run at the full rate), then `over`.
 * Throws on a bad config, naming the field, so a typo fails the test that made it.
 */
export function testConfig(over: Record<string, unknown> = {}): RoomConfig {
  const r = parseRoomConfig({ schedule: { kind: 'constant', warmupSteps: 0 }, ...over })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

/** testConfig with a file's own defaults under each test's overrides. */
export const configWith = (defaults: Record<string, unknown>) =>
  (over: Record<string, unknown> = {}): RoomConfig => testConfig({ ...defaults, ...over })

/** A shard whose loss is identically 0: gradients are exactly 0, so only averaging moves x. */
export const flatShard = (d: number): LsqShard => ({ m: 1, d, A: new Float64Array(d), b: new Float64Array(1) })

/** One algorithm log line, with the peer that wrote it. */
export interface LogLine { peer: string; event: string; detail?: Record<string, unknown> }

export interface TestPeer<C extends Compute = Compute> {
  id: string
  mesh: MemoryMesh
  compute: C
  inst: AlgorithmInstance
  /** Aborting it stops the peer's waits (and runSteps). */
  stop: AbortController
}

/**
 * Starts one peer of `factory` on `net` (joining it unless it already joined), logging into
 * `logs`. Peers that start together join first (startPeers), so their first membership already
 * holds the whole group.
 */
export async function startPeer<C extends Compute>(factory: AlgorithmFactory, net: MemoryNetwork, id: string, compute: C, cfg: RoomConfig, logs: LogLine[]): Promise<TestPeer<C>> {
  const mesh = net.mesh(id) ?? net.join(id)
  const stop = new AbortController()
  const inst = await factory({
    mesh, compute, config: cfg, signal: stop.signal, now: () => performance.now(),
    log: (event, detail) => logs.push({ peer: id, event, detail }),
  })
  return { id, mesh, compute, inst, stop }
}

/** Peers p0, p1, … with these computes: all join, then all start. */
export async function startPeers<C extends Compute>(factory: AlgorithmFactory, net: MemoryNetwork, computes: C[], cfg: RoomConfig, logs: LogLine[]): Promise<TestPeer<C>[]> {
  const ids = computes.map((_, i) => `p${i}`)
  for (const id of ids) net.join(id)
  return Promise.all(ids.map((id, i) => startPeer(factory, net, id, computes[i], cfg, logs)))
}

/** Steps `p` k times (fewer once it is stopped), appending each report to `out`. */
export async function runSteps(p: { inst: AlgorithmInstance; stop: AbortController }, k: number, out: StepReport[] = []): Promise<StepReport[]> {
  for (let i = 0; i < k && !p.stop.signal.aborted; i++) {
    out.push(await p.inst.step())
    // The memory mesh delivers with microtasks: without a yield a long run never returns to the
    // event loop, and vitest's worker cannot answer its runner (its RPC gives up after 60 s).
    if (i % 50 === 49) await new Promise((r) => setImmediate(r))
  }
  return out
}
