import type { Compute, GradientResult } from '../algorithms/types'
import { ALGORITHM_DESCRIPTORS, type AlgorithmName } from '../algorithms/descriptors'
import type { Dataset } from '../data/format'
import { ProgressClock, type Envelope, type Mesh, type MeshMessage, type MessageFilter, type PeerId } from '../transport'
import { Rng } from './random'

/**
 * The attack catalogue (docs/security.md "Attacks on training"): hostile volunteers for tests, the simulator
 * (`npm run sim -- --attack NAME --attackers K`), the attacks benchmark (bench/attacks.ts) and,
 * for testing only, real Node peers (`npm run peer -- --attack NAME`). The fault catalogue
 * (faults.ts) models an unreliable network; this one models peers that lie. Pure TS, no Node
 * APIs, all randomness from a seeded Rng.
 *
 * An attacker runs the real algorithm and trains its own model honestly (except label-flip,
 * which poisons its data); what it *contributes* is poisoned, at one of two levels chosen from
 * the room's algorithm (`attackLevel`):
 *  - 'gradient' for the algorithms whose payloads are gradient increments (ssgd, asgd, od-sgd:
 *    their descriptor's `increments`): `Compute.gradient()` returns the poisoned gradient, so
 *    the attacker's contribution to the all-reduce sum or its push to the PS is poisoned, the
 *    usual Byzantine-worker threat model (and it stays meaningful however the collective is
 *    built, e.g. a robust one that sends each gradient to chunk owners).
 *  - 'model' for everything else (gossip, ad-psgd, local-sgd, lap-sgd): every vector payload it
 *    sends (its model to neighbours, exchange partners, joiners) is poisoned on the way out.
 *    In local-sgd's ring all-reduce its outgoing partial sums are poisoned, which also spoils
 *    what upstream peers added (a Byzantine ring member can do that).
 *
 * The "honest statistics" that ALIE and IPM need: in a decentralized room nobody sees every
 * honest vector, so the attacker estimates them from what it has: at model level, the latest
 * vector of the same kind (digits masked, same length) from each neighbour that sent it one, plus
 * its own honest vector; at gradient level (it never sees other peers' gradients alone: the PS
 * receives them, an all-reduce only shows partial sums) and whenever fewer than 2 neighbour
 * vectors are known, its own last STATS_WINDOW honest vectors, whose minibatch-to-minibatch
 * spread stands in for the spread across honest peers (a fair proxy on iid data, an
 * underestimate on non-iid data: a weaker ALIE than an omniscient one).
 */

export const ATTACK_NAMES = ['sign-flip', 'scaled', 'noise', 'alie', 'ipm', 'stale', 'clock', 'flood', 'label-flip'] as const
export type AttackName = (typeof ATTACK_NAMES)[number]

/** Where an attacker poisons what it contributes (see the module comment). */
export type AttackLevel = 'model' | 'gradient'

/** Own honest vectors kept per kind for the statistics of ALIE / IPM. */
export const STATS_WINDOW = 8

/** What a vector attack sees besides the honest vector it replaces. */
export interface VectorContext {
  /** The attacker's estimate of the honest vectors of this kind (own honest one included; ≥ 1). */
  sample(): Float32Array[]
  /** The first honest vector of this pool (for the free-rider's replay). */
  readonly first: Float32Array
  readonly rng: Rng
  /** The attack's parameter (ATTACKS[name].param.default unless `name:value` was given). */
  readonly param: number
}

/** Turns the honest vector into the one the attacker contributes (never mutates `honest`). */
export type VectorAttack = (honest: Float32Array, ctx: VectorContext) => Float32Array

export interface AttackSpec {
  readonly description: string
  /** The one tunable of the attack, settable as `name:value`. */
  readonly param: { readonly name: string; readonly default: number } | null
  /** Poisons each contributed vector (a model payload or a gradient, by level). */
  readonly vector?: VectorAttack
  /** Clock poisoning: every message it sends carries this progress counter (param). */
  readonly clock?: true
  /** Message flood: per real message, this many junk messages to the same neighbour (param). */
  readonly flood?: true
  /** Poisons its local training labels. */
  readonly labels?: (y: number, numClasses: number) => number
}

/** Coordinate-wise mean and (population) standard deviation of equally long vectors. */
export function meanStd(xs: readonly Float32Array[]): { mean: Float32Array; std: Float32Array } {
  const d = xs[0].length
  const mean = new Float32Array(d)
  const std = new Float32Array(d)
  for (let i = 0; i < d; i++) {
    let s = 0
    for (const x of xs) s += x[i]
    const m = s / xs.length
    let v = 0
    for (const x of xs) v += (x[i] - m) ** 2
    mean[i] = m
    std[i] = Math.sqrt(v / xs.length)
  }
  return { mean, std }
}

const map = (x: Float32Array, f: (v: number, i: number) => number): Float32Array => {
  const out = new Float32Array(x.length)
  for (let i = 0; i < x.length; i++) out[i] = f(x[i], i)
  return out
}

/** The registry: one entry per attack of docs/security.md "Attacks on training". */
export const ATTACKS: Readonly<Record<AttackName, AttackSpec>> = {
  'sign-flip': {
    description: 'sends −c × its model (or gradient)',
    param: { name: 'c', default: 1 },
    vector: (x, { param }) => map(x, (v) => -param * v),
  },
  scaled: {
    description: 'sends its model (or gradient) × s',
    param: { name: 's', default: 100 },
    vector: (x, { param }) => map(x, (v) => param * v),
  },
  noise: {
    description: 'adds N(0, σ²) to every coordinate of its model (or gradient)',
    param: { name: 'σ', default: 1 },
    vector: (x, { param, rng }) => map(x, (v) => v + param * rng.gaussian()),
  },
  alie: {
    description: '"A little is enough" (Baruch et al. 2019): mean − z·std of the honest vectors, coordinate-wise',
    param: { name: 'z', default: 1 },
    vector: (_x, { param, sample }) => {
      const { mean, std } = meanStd(sample())
      return map(mean, (m, i) => m - param * std[i])
    },
  },
  ipm: {
    description: 'inner-product manipulation (Xie et al. 2020): −ε × the mean of the honest vectors',
    param: { name: 'ε', default: 0.5 },
    vector: (_x, { param, sample }) => map(meanStd(sample()).mean, (m) => -param * m),
  },
  stale: {
    description: 'free-rider: replays the first model (or gradient) it produced, forever (at gradient level it stops computing)',
    param: null,
    vector: (_x, { first }) => new Float32Array(first),
  },
  clock: {
    description: 'clock poisoning: every message carries a huge progress counter',
    param: { name: 'clock', default: 2 ** 40 },
    clock: true,
  },
  flood: {
    description: 'message flood: k junk messages to the neighbour per real message (half far-future rounds of the real kind, half unknown kinds)',
    param: { name: 'k', default: 20 },
    flood: true,
  },
  'label-flip': {
    description: 'trains on flipped labels y → K − 1 − y (K classes) and shares that model honestly',
    param: null,
    labels: (y, k) => k - 1 - y,
  },
}

export interface ParsedAttack {
  readonly name: AttackName
  readonly param: number
}

/** `NAME` or `NAME:VALUE` (the attack's parameter); throws naming the valid choices. */
export function parseAttack(s: string): ParsedAttack {
  const [name, value, ...rest] = s.split(':')
  if (!(ATTACK_NAMES as readonly string[]).includes(name) || rest.length)
    throw new Error(`unknown attack '${s}': one of ${ATTACK_NAMES.join(', ')} (optionally NAME:VALUE)`)
  const spec = ATTACKS[name as AttackName]
  if (value === undefined) return { name: name as AttackName, param: spec.param?.default ?? 0 }
  const param = Number(value)
  if (!spec.param || value === '' || !Number.isFinite(param)) throw new Error(`attack '${name}' takes ${spec.param ? `a numeric ${spec.param.name}` : 'no parameter'}`)
  return { name: name as AttackName, param }
}

/** 'gradient' for algorithms that exchange gradient increments (ssgd, asgd, od-sgd), else 'model'. */
export function attackLevel(algorithm: AlgorithmName): AttackLevel {
  const kinds = ALGORITHM_DESCRIPTORS[algorithm].messageKinds
  return kinds.sends.some((k) => kinds.increments(k.replace(/<[^>]*>/g, '0'))) ? 'gradient' : 'model'
}

/**
 * Model-level statistics pool vectors by length, not kind: ad-psgd's models arrive as `accept`
 * and leave as `exchange` (or the other way round), gossip's as `<algorithm>/x`, and every
 * model payload of a room has the same length.
 */
const vectorKey = (data: Float32Array) => `model/${data.length}`

/** The attacker's view of the honest vectors of one pool (see the module comment). */
class VectorStats {
  private readonly fromPeers = new Map<PeerId, Float32Array>()
  private readonly own: Float32Array[] = []
  first: Float32Array | null = null

  observe(from: PeerId, data: Float32Array): void {
    this.fromPeers.set(from, data)
  }

  ownHonest(x: Float32Array): void {
    this.first ??= new Float32Array(x)
    this.own.push(new Float32Array(x))
    if (this.own.length > STATS_WINDOW) this.own.shift()
  }

  sample(length: number): Float32Array[] {
    const peers = [...this.fromPeers.values()].filter((x) => x.length === length)
    const own = this.own.filter((x) => x.length === length)
    return peers.length >= 2 ? [...peers, own[own.length - 1]] : [...peers, ...own]
  }
}

/** One hostile volunteer: wraps its data, its compute and its mesh. Identity where the attack does not act. */
export class Attacker {
  readonly spec: AttackSpec
  readonly level: AttackLevel
  private readonly rng: Rng
  private readonly stats = new Map<string, VectorStats>()
  /** Junk messages sent (flood) and vectors poisoned, for tests and logs. */
  readonly counts = { poisoned: 0, junk: 0 }

  constructor(readonly attack: ParsedAttack, opts: { algorithm: AlgorithmName; seed: number }) {
    this.spec = ATTACKS[attack.name]
    this.level = attackLevel(opts.algorithm)
    this.rng = new Rng(opts.seed ^ 0xa77ac4)
  }

  /** The attack's transform of one honest vector of statistics pool `key` (exposed for unit tests). */
  poison(key: string, honest: Float32Array): Float32Array {
    const st = this.statsFor(key)
    st.ownHonest(honest)
    if (!this.spec.vector) return honest
    this.counts.poisoned++
    return this.spec.vector(honest, { sample: () => st.sample(honest.length), first: st.first!, rng: this.rng, param: this.attack.param })
  }

  /** Records a vector received from a neighbour (the attacker's estimate of the honest ones). */
  observe(key: string, from: PeerId, data: Float32Array): void {
    this.statsFor(key).observe(from, data)
  }

  private statsFor(key: string): VectorStats {
    let st = this.stats.get(key)
    if (!st) this.stats.set(key, (st = new VectorStats()))
    return st
  }

  /** Label-flip: a copy of `d` with poisoned labels; `d` itself otherwise. */
  data<D extends Pick<Dataset, 'y' | 'numClasses'>>(d: D): D {
    const f = this.spec.labels
    if (!f) return d
    return { ...d, y: Uint8Array.from(d.y, (y) => f(y, d.numClasses)) }
  }

  /** Gradient level: `gradient()` returns the poisoned gradient (the stale one stops computing). */
  compute<C extends Compute>(c: C): C {
    if (this.level !== 'gradient' || !this.spec.vector) return c
    let cached: GradientResult | null = null
    const gradient = async (): Promise<GradientResult> => {
      if (this.attack.name === 'stale' && cached) return { ...cached, grad: new Float32Array(cached.grad) }
      const r = await c.gradient()
      cached ??= { ...r, grad: new Float32Array(r.grad) }
      return { ...r, grad: this.poison('gradient', r.grad) }
    }
    return forward(c, { gradient })
  }

  /**
   * The mesh the algorithm talks through. Model level: outgoing vectors are poisoned and
   * incoming ones recorded for the statistics. Clock: the underlying mesh stamps a huge clock on
   * every message while the algorithm keeps an honest clock of its own. Flood: junk after every
   * real message.
   */
  mesh<M extends Mesh>(inner: M): M {
    const poisonsModels = this.level === 'model' && !!this.spec.vector
    const overrides: Partial<Record<keyof Mesh, unknown>> = {}
    if (this.spec.clock) {
      const honest = new ProgressClock()
      honest.observe(inner.clock.value)
      inner.clock.advance(this.attack.param)
      overrides.clock = honest
      overrides.receive = async (filter: MessageFilter, signal: AbortSignal): Promise<Envelope> => {
        const e = await inner.receive(filter, signal)
        honest.observe(e.clock)
        return e
      }
    } else if (poisonsModels) {
      overrides.receive = async (filter: MessageFilter, signal: AbortSignal): Promise<Envelope> => {
        const e = await inner.receive(filter, signal)
        if (e.data) this.observe(vectorKey(e.data), e.from, e.data)
        return e
      }
    }
    if (poisonsModels || this.spec.flood || this.spec.clock) {
      overrides.send = async (to: PeerId, msg: MeshMessage, signal?: AbortSignal): Promise<void> => {
        // Re-assert the poisoned clock: the real mesh only ever max-merges it.
        if (this.spec.clock) inner.clock.advance(this.attack.param)
        const out = poisonsModels && msg.data ? { ...msg, data: this.poison(vectorKey(msg.data), msg.data) } : msg
        await inner.send(to, out, signal)
        if (this.spec.flood) void Promise.allSettled(this.junk(msg).map((j) => inner.send(to, j)))
      }
    }
    return forward(inner, overrides)
  }

  /** The flood that follows one real message (small payloads: the point is the count). */
  private junk(msg: MeshMessage): MeshMessage[] {
    const k = Math.max(0, Math.floor(this.attack.param))
    this.counts.junk += k
    return Array.from({ length: k }, (_, j) => ({
      kind: j % 2 === 0 ? msg.kind : `flood/${j}`,
      round: msg.round + 1_000_000 + this.rng.int(1_000_000),
      data: Float32Array.from({ length: 16 }, () => this.rng.gaussian()),
    }))
  }
}

/**
 * A view of `target` with some members replaced; every other member reads through to the target
 * (methods bound to it), so class instances with private state (TfCompute, MemoryMesh, the
 * WebRTC mesh) keep working and extra members (SessionMesh's) stay reachable.
 */
function forward<T extends object>(target: T, overrides: Partial<Record<PropertyKey, unknown>>): T {
  if (Object.keys(overrides).length === 0) return target
  return new Proxy(target, {
    get(t, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop as string]
      // The target as receiver: getters that read private (#) fields must see the real object.
      const v = Reflect.get(t, prop, t)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v
    },
  })
}

/** Attacker for peer `index` of a room (seeded per peer), from `NAME` or `NAME:VALUE`. */
export function makeAttacker(attack: string | ParsedAttack, opts: { algorithm: AlgorithmName; seed: number }): Attacker {
  return new Attacker(typeof attack === 'string' ? parseAttack(attack) : attack, opts)
}
