import { z } from 'zod'
import { LINK_PROFILES } from './link-conditions'
import {
  ALGORITHM_DESCRIPTORS, ALGORITHMS, algorithmsWhere, topologyRule, type AlgorithmInfo, type AlgorithmName,
} from './algorithms/descriptors'

/**
 * Room configuration: the one schema shared by the server (POST /api/rooms), the client,
 * Node peers and the simulator. `parseRoomConfig` applies the algorithm's defaults, then
 * validates, so every error names the field at fault. What each algorithm accepts and defaults
 * to is its descriptor's (shared/algorithms/descriptors.ts).
 */

export { ALGORITHMS, type AlgorithmName }

export const TOPOLOGIES = ['ring', 'torus', 'exponential', 'one-peer-exponential', 'clique', 'star'] as const
export type TopologyName = (typeof TOPOLOGIES)[number]

export const DATASETS = ['mnist', 'fashion-mnist', 'synthetic'] as const
export type DatasetName = (typeof DATASETS)[number]

export const MODELS = ['mlp', 'deep-mlp', 'cnn'] as const
export type ModelName = (typeof MODELS)[number]

export const COMPRESSIONS = ['fp32', 'fp16', 'int8'] as const
export const ROBUST_MODES = ['off', 'on'] as const
export type RobustMode = (typeof ROBUST_MODES)[number]
export type Compression = (typeof COMPRESSIONS)[number]

/**
 * Dirichlet concentrations the data server can split by (shared/data/partition.ts needs α > 0; a
 * tiny α puts every class on one peer and its gamma draws underflow, a huge one is iid anyway).
 */
export const DIRICHLET_ALPHA_MIN = 0.01
export const DIRICHLET_ALPHA_MAX = 1000

export const partitionSchema = z
  .string()
  .max(32)
  .regex(/^(iid|label-skew:\d{1,3}|dirichlet:\d{1,4}(\.\d{1,6})?)$/, 'partition must be iid, label-skew:C or dirichlet:α')
  .refine((p) => {
    if (!p.startsWith('dirichlet:')) return true
    const a = parseFloat(p.slice('dirichlet:'.length))
    return a >= DIRICHLET_ALPHA_MIN && a <= DIRICHLET_ALPHA_MAX
  }, `dirichlet α must be between ${DIRICHLET_ALPHA_MIN} and ${DIRICHLET_ALPHA_MAX}`)
export type Partition =
  | { kind: 'iid' }
  | { kind: 'label-skew'; classesPerPeer: number }
  | { kind: 'dirichlet'; alpha: number }

export function parsePartition(s: string): Partition {
  if (s === 'iid') return { kind: 'iid' }
  const [k, v] = s.split(':')
  if (k === 'label-skew') return { kind: 'label-skew', classesPerPeer: Math.max(1, parseInt(v, 10)) }
  if (k === 'dirichlet') return { kind: 'dirichlet', alpha: parseFloat(v) }
  throw new Error(`bad partition '${s}'`)
}

/** Seeds of weights and data shards: 31 bits (what the data routes accept too). */
export const MAX_SEED = 2 ** 31 - 1

/** The longest run a room can ask for; step counts inside the config are bounded by it. */
export const MAX_TOTAL_STEPS = 10_000_000
const stepCount = z.number().int().min(0).max(MAX_TOTAL_STEPS)

// Every object is strict: an unknown key at any depth is refused, naming it (a typo or a probe
// must not pass silently, and nothing unvalidated reaches a peer).
export const scheduleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('constant'), warmupSteps: stepCount.default(0) }),
  z.strictObject({
    kind: z.enum(['cosine', 'linear']),
    warmupSteps: stepCount.default(0),
    minLr: z.number().min(0).max(100).default(0),
  }),
  z.strictObject({
    kind: z.literal('step'),
    warmupSteps: stepCount.default(0),
    /** Fractions of totalSteps at which lr is multiplied by `gamma`. */
    milestones: z.array(z.number().gt(0).lt(1)).max(16).default([0.5, 0.75]),
    gamma: z.number().gt(0).max(1).default(0.1),
  }),
])
export type Schedule = z.infer<typeof scheduleSchema>

export const syncSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('constant'), h: z.number().int().min(1).max(MAX_TOTAL_STEPS) }),
  z.strictObject({
    kind: z.literal('qsr'),
    hBase: z.number().int().min(1).max(MAX_TOTAL_STEPS),
    /** QSR's α: H = (α/η)²; far above any published value (0.0004–0.4) is refused. */
    alpha: z.number().min(0).max(100),
    hMax: z.number().int().min(1).max(MAX_TOTAL_STEPS).optional(),
  }),
])
export type SyncRule = z.infer<typeof syncSchema>

/**
 * ssgd: the large-batch recipe of Goyal et al. (docs/algorithms.md "SSGD linear learning-rate scaling"). `linear`: the peak lr is
 * lr · B/referenceBatch with B the global batch of each step (the samples all-reduced that step,
 * so it follows the group as peers come and go, docs/algorithms.md "SSGD under churn"), and warmup ramps from the base lr up to
 * that peak. The default reference batch is Goyal's 256 (lr 0.1 per 256 samples).
 */
export const lrScalingSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('none') }),
  z.strictObject({ kind: z.literal('linear'), referenceBatch: z.number().int().min(1).max(1 << 24).default(256) }),
])
export type LrScaling = z.infer<typeof lrScalingSchema>

/** A STUN or TURN server address: nothing else may reach a browser's RTCPeerConnection config. */
const iceUrlSchema = z.string().min(1).max(512).regex(/^(stun|turn|turns):[^\s]+$/, "ICE server urls must start with 'stun:', 'turn:' or 'turns:'")

export const iceServerSchema = z.strictObject({
  urls: z.union([iceUrlSchema, z.array(iceUrlSchema).min(1).max(8)]),
  username: z.string().max(256).optional(),
  credential: z.string().max(256).optional(),
})
export type IceServer = z.infer<typeof iceServerSchema>

/** 'relay': WebRTC uses TURN relays only (networks that need it, and tests of the relay path). */
export const ICE_TRANSPORT_POLICIES = ['all', 'relay'] as const

/** The topologies each algorithm runs on (the config check, the host form and the tests read this). */
export function allowedTopologies(algorithm: AlgorithmName): readonly TopologyName[] {
  return ALGORITHM_DESCRIPTORS[algorithm].topologies
}

/** hiddenGraceMs bounds: a phone's screen dims after 30 s to a few minutes by default. */
export const HIDDEN_GRACE_DEFAULT_MS = 60_000
export const HIDDEN_GRACE_MIN_MS = 1_000
export const HIDDEN_GRACE_MAX_MS = 30 * 60_000

/**
 * testSubset bounds: the test examples a tab downloads and measures accuracy on. 2000 keeps a
 * tab's test download to a fifth of MNIST's split with a standard error under 1 point at 90 %.
 */
export const TEST_SUBSET_DEFAULT = 2000
export const TEST_SUBSET_MIN = 100
export const TEST_SUBSET_MAX = 10_000

const LR_SCALING_READERS = algorithmsWhere((d) => d.knobs.includes('lrScaling')).map((a) => `'${a}'`).join(' or ')

const roomConfigObject = z
  .object({
    algorithm: z.enum(ALGORITHMS),
    topology: z.enum(TOPOLOGIES),
    dataset: z.enum(DATASETS),
    model: z.enum(MODELS),
    partition: partitionSchema,
    /** Per-peer minibatch size. */
    batchSize: z.number().int().min(1).max(4096),
    /** Training length in (global) steps; schedules and QSR's H cap use it. */
    totalSteps: z.number().int().min(1).max(MAX_TOTAL_STEPS),
    lr: z.number().gt(0).max(100),
    momentum: z.number().min(0).lt(1),
    weightDecay: z.number().min(0).max(1),
    schedule: scheduleSchema,
    /** ssgd: linear lr scaling with the global batch, warmup from the base lr (docs/algorithms.md "SSGD linear learning-rate scaling"). */
    lrScaling: lrScalingSchema,
    /**
     * ssgd: average x and m over the group every this many steps (0: never on a schedule).
     * Replicas can drift apart: lossy wire codecs decode a chunk differently from its owner's
     * copy, and a step whose all-reduce failed falls back to the local gradient. A fallback
     * always triggers a resync at the next step that reaches the group; this bounds the rest.
     */
    resyncEvery: z.number().int().min(0).max(1_000_000),
    /** dpsgd: Lian's average-while-compute (default) or adapt-then-combine. */
    order: z.enum(['awc', 'atc']),
    /** local-sgd / local-adamw / lap-sgd: when to average. */
    sync: syncSchema,
    /** local-sgd / local-adamw: also average optimizer state (momentum / Adam moments). */
    averageOptimizerState: z.boolean(),
    adam: z.strictObject({ beta1: z.number().min(0).lt(1), beta2: z.number().min(0).lt(1), eps: z.number().gt(0).max(1) }),
    /** od-sgd: local compensating step. */
    localLr: z.number().min(0).max(100),
    localOptimizer: z.enum(['sgd', 'cadcasgd']),
    dcLambda: z.number().min(0).max(100),
    /** od-sgd / ssgd-style warm start length in steps. */
    warmStartSteps: stepCount,
    /** lap-sgd: concurrent Hogwild updaters per tab. */
    updaters: z.number().int().min(1).max(16),
    compression: z.enum(COMPRESSIONS),
    /** Named deadline for a neighbour's message in a synchronous step (docs/algorithms.md "Deadlines and folding of missing neighbours"). */
    stepDeadlineMs: z.number().int().min(50).max(600_000),
    /** After this many consecutive missed deadlines a neighbour is reported as suspect. */
    suspectAfterMisses: z.number().int().min(1).max(1000),
    /** Largest accepted message (bytes) on a data channel; bigger ones are rejected. */
    maxMessageBytes: z.number().int().min(1024).max(1 << 30),
    /** STUN/TURN servers for real deployments; empty on a LAN and in tests. */
    iceServers: z.array(iceServerSchema).max(16),
    /** Seed for initial weights and data shards. */
    seed: z.number().int().min(0).max(MAX_SEED),
    /**
     * Byzantine-robust aggregation (docs/algorithms.md "Robust aggregation"): 'on' bounds each
     * neighbour's influence on the average (clipping / trimmed mean, per algorithm family);
     * 'off' averages with full weight. Appended later: stored configs without it read as 'off'.
     */
    robust: z.enum(ROBUST_MODES).default('off'),
    /**
     * RTCPeerConnection's iceTransportPolicy on every link: 'relay' sends all traffic through the
     * TURN servers (iceServers, or the server's TURN_URLS). Appended later: absent reads as 'all'.
     */
    iceTransportPolicy: z.enum(ICE_TRANSPORT_POLICIES).default('all'),
    /**
     * Emulated network conditions on every link (docs/architecture.md "Link conditions"): 'lan'
     * adds nothing; 'wan', 'slow' and 'lossy' add delay, an uplink cap and retransmissions. A peer
     * may override it for itself (npm run peer -- --link). Appended later: absent reads as 'lan'.
     */
    link: z.enum(LINK_PROFILES).default('lan'),
    /**
     * How long a volunteer tab may stay hidden (a phone's screen dims, a student switches tabs)
     * before it steps out of the roster. Longer keeps phones in through a screen dim; shorter
     * spares the neighbours deadlines a throttled hidden tab would make them miss. Appended
     * later: stored configs without it read as the default.
     */
    hiddenGraceMs: z.number().int().min(HIDDEN_GRACE_MIN_MS).max(HIDDEN_GRACE_MAX_MS).default(HIDDEN_GRACE_DEFAULT_MS),
    /**
     * How many test examples every peer downloads and measures accuracy on: the same stratified
     * pick everywhere (shared/data/subset.ts), so accuracies compare across tabs, Node peers and
     * rooms; capped by the split's size. Appended later: absent reads as the default.
     */
    testSubset: z.number().int().min(TEST_SUBSET_MIN).max(TEST_SUBSET_MAX).default(TEST_SUBSET_DEFAULT),
  })

/**
 * A room config as the server validates it: strict at every level, with the cross-field rules.
 * What clients read from a server is announcedConfigSchema (a newer server's new fields kept).
 */
export const roomConfigSchema = roomConfigObject
  .strict()
  .superRefine((c, ctx) => {
    const need = (ok: boolean, path: string, message: string) => {
      if (!ok) ctx.addIssue({ code: 'custom', path: [path], message })
    }
    need(allowedTopologies(c.algorithm).includes(c.topology), 'topology', topologyRule(c.algorithm))
    if (c.sync.kind === 'qsr' && c.sync.hMax !== undefined)
      need(c.sync.hMax >= c.sync.hBase, 'sync', 'sync.hMax must be ≥ sync.hBase')
    need(c.schedule.warmupSteps < c.totalSteps || c.schedule.warmupSteps === 0, 'schedule', 'schedule.warmupSteps must be < totalSteps')
    need(c.lrScaling.kind === 'none' || ALGORITHM_DESCRIPTORS[c.algorithm].knobs.includes('lrScaling'), 'lrScaling',
      `lrScaling 'linear' is the SSGD large-batch recipe (global batch = the all-reduce group's): use it with algorithm ${LR_SCALING_READERS}`)
  })

export type RoomConfig = z.infer<typeof roomConfigSchema>

/**
 * A config a client receives (membership, room view, history): the same fields, and top-level
 * keys it does not know yet kept rather than refused, so a page loaded before the server gained
 * a field keeps working. The server only ever sends configs it validated with roomConfigSchema.
 */
export const announcedConfigSchema = roomConfigObject.loose()

/** Defaults shared by every algorithm (a small MNIST MLP on a ring, docs/algorithms.md "D-PSGD (AWC and ATC)" defaults). */
export const BASE_DEFAULTS: RoomConfig = {
  algorithm: 'dpsgd',
  topology: 'ring',
  dataset: 'mnist',
  model: 'mlp',
  partition: 'iid',
  batchSize: 32,
  totalSteps: 3000,
  lr: 0.05,
  momentum: 0.9,
  weightDecay: 0,
  schedule: { kind: 'constant', warmupSteps: 0 },
  lrScaling: { kind: 'none' },
  // One extra 2·d all-reduce per 100 steps (1 % of SSGD's traffic) bounds codec drift.
  resyncEvery: 100,
  order: 'awc',
  sync: { kind: 'constant', h: 4 },
  averageOptimizerState: false,
  adam: { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
  localLr: 0.25,
  localOptimizer: 'sgd',
  dcLambda: 2,
  warmStartSteps: 20,
  updaters: 2,
  compression: 'fp32',
  stepDeadlineMs: 3000,
  suspectAfterMisses: 5,
  maxMessageBytes: 64 * 1024 * 1024,
  iceServers: [],
  seed: 0,
  robust: 'off',
  iceTransportPolicy: 'all',
  link: 'lan',
  hiddenGraceMs: HIDDEN_GRACE_DEFAULT_MS,
  testSubset: TEST_SUBSET_DEFAULT,
}

/** Per-algorithm overrides of BASE_DEFAULTS: each descriptor's default topology and recipe. */
export const ALGORITHM_DEFAULTS: Record<AlgorithmName, Partial<RoomConfig>> = Object.fromEntries(
  ALGORITHMS.map((a) => [a, { topology: ALGORITHM_DESCRIPTORS[a].defaultTopology, ...ALGORITHM_DESCRIPTORS[a].defaults }]),
) as Record<AlgorithmName, Partial<RoomConfig>>

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export type ConfigResult = { ok: true; config: RoomConfig } | { ok: false; error: string; field: string }

/** Merges defaults for the requested algorithm under `input`, validates, and names the bad field on error. */
export function parseRoomConfig(input: unknown): ConfigResult {
  if (input !== undefined && !isPlainObject(input)) return { ok: false, error: 'config: must be a JSON object', field: 'config' }
  const raw = (input ?? {}) as Record<string, unknown>
  const algoParse = z.enum(ALGORITHMS).optional().safeParse(raw.algorithm)
  if (!algoParse.success)
    return { ok: false, field: 'algorithm', error: `algorithm: must be one of ${ALGORITHMS.join(', ')}` }
  const algorithm = algoParse.data ?? BASE_DEFAULTS.algorithm
  const merged: Record<string, unknown> = { ...BASE_DEFAULTS, ...ALGORITHM_DEFAULTS[algorithm], ...raw, algorithm }
  // Nested objects: merge field-wise so {adam:{beta2:0.99}} keeps the other defaults.
  if (isPlainObject(raw.adam)) merged.adam = { ...BASE_DEFAULTS.adam, ...raw.adam }
  // Own keys only: `'__proto__' in obj` and `'toString' in obj` are true for every object.
  const unknownKeys = Object.keys(raw).filter((k) => !Object.hasOwn(BASE_DEFAULTS, k))
  if (unknownKeys.length) {
    const field = keyName(unknownKeys[0])
    return { ok: false, field, error: `${field}: unknown config field` }
  }
  const totalSteps = typeof raw.totalSteps === 'number' && Number.isInteger(raw.totalSteps) && raw.totalSteps >= 1
    ? raw.totalSteps : BASE_DEFAULTS.totalSteps
  if (raw.schedule === undefined || isPlainObject(raw.schedule))
    merged.schedule = mergeSchedule(defaultSchedule(algorithm, totalSteps), (raw.schedule ?? {}) as Record<string, unknown>)
  const r = roomConfigSchema.safeParse(merged)
  if (r.success) return { ok: true, config: r.data }
  const issue = r.error.issues[0]
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path, issue.keys[0]].map((k) => keyName(String(k))).join('.')
    return { ok: false, field, error: `${field}: unknown config field` }
  }
  const field = issue.path.join('.')
  return { ok: false, field, error: `${field || 'config'}: ${issue.message}` }
}

/**
 * The algorithm's default schedule for a run of `totalSteps`. The warmups in ALGORITHM_DEFAULTS
 * are written for the default run length (BASE_DEFAULTS.totalSteps); a run of another length gets
 * the same fraction of it as warmup (rounded, and always shorter than the run), so a short run
 * keeps the recipe's shape instead of being refused or spending most of itself warming up.
 */
export function defaultSchedule(algorithm: AlgorithmName, totalSteps: number): Schedule {
  const base = ALGORITHM_DEFAULTS[algorithm].schedule ?? BASE_DEFAULTS.schedule
  return { ...base, warmupSteps: scaledWarmup(base.warmupSteps, totalSteps) }
}

function scaledWarmup(warmupAtDefaultLength: number, totalSteps: number): number {
  if (warmupAtDefaultLength === 0) return 0
  const w = Math.round((warmupAtDefaultLength * totalSteps) / BASE_DEFAULTS.totalSteps)
  return Math.max(0, Math.min(w, totalSteps - 1))
}

/**
 * A requested schedule over the default one, field by field: naming only `warmupSteps` keeps the
 * default kind (and its decay), naming only `kind` keeps the default (scaled) warmup. Fields that
 * the resulting kind does not take are dropped so they cannot leak from the default.
 */
function mergeSchedule(def: Schedule, req: Record<string, unknown>): Record<string, unknown> {
  const kind = req.kind ?? def.kind
  const fromDefault = kind === def.kind ? def : { warmupSteps: def.warmupSteps }
  return { ...fromDefault, ...req, kind }
}

/**
 * The config as anyone may see it (room view, history, model metadata): ICE server credentials
 * stay on the server and reach a volunteer only over its own socket (the membership it joined).
 */
export function publicConfig(c: RoomConfig): RoomConfig {
  if (c.iceServers.every((s) => s.username === undefined && s.credential === undefined)) return c
  return { ...c, iceServers: c.iceServers.map((s) => ({ urls: s.urls })) }
}

export function defaultConfig(algorithm: AlgorithmName = 'dpsgd', totalSteps?: number): RoomConfig {
  const r = parseRoomConfig(totalSteps === undefined ? { algorithm } : { algorithm, totalSteps })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

/** One plain-language line and the source paper per algorithm (used by the host UI and docs). */
export const ALGORITHM_INFO: Readonly<Record<AlgorithmName, AlgorithmInfo>> = ALGORITHM_DESCRIPTORS

/** A key as an error names it: as it is, or quoted when it would not read as a name ('', ' ', 'a.b'). */
function keyName(key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key)
}
