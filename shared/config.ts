import { z } from 'zod'

/**
 * Room configuration: the one schema shared by the server (POST /api/rooms), the client,
 * Node peers and the simulator. `parseRoomConfig` applies per-algorithm defaults taken from
 * ../shared/ALGORITHMS.md, then validates, so every error names the field at fault.
 */

export const ALGORITHMS = [
  'ssgd', 'dpsgd', 'dmsgd', 'decentlam', 'local-sgd', 'local-adamw', 'lap-sgd', 'asgd', 'od-sgd', 'ad-psgd',
] as const
export type AlgorithmName = (typeof ALGORITHMS)[number]

export const TOPOLOGIES = ['ring', 'torus', 'exponential', 'one-peer-exponential', 'clique', 'star'] as const
export type TopologyName = (typeof TOPOLOGIES)[number]

export const DATASETS = ['mnist', 'fashion-mnist', 'synthetic'] as const
export type DatasetName = (typeof DATASETS)[number]

export const MODELS = ['mlp', 'deep-mlp', 'cnn'] as const
export type ModelName = (typeof MODELS)[number]

export const COMPRESSIONS = ['fp32', 'fp16', 'int8'] as const
export type Compression = (typeof COMPRESSIONS)[number]

export const partitionSchema = z
  .string()
  .regex(/^(iid|label-skew:\d+|dirichlet:\d+(\.\d+)?)$/, 'partition must be iid, label-skew:C or dirichlet:α')
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

export const scheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), warmupSteps: z.number().int().min(0).default(0) }),
  z.object({
    kind: z.enum(['cosine', 'linear']),
    warmupSteps: z.number().int().min(0).default(0),
    minLr: z.number().min(0).default(0),
  }),
  z.object({
    kind: z.literal('step'),
    warmupSteps: z.number().int().min(0).default(0),
    /** Fractions of totalSteps at which lr is multiplied by `gamma`. */
    milestones: z.array(z.number().gt(0).lt(1)).default([0.5, 0.75]),
    gamma: z.number().gt(0).max(1).default(0.1),
  }),
])
export type Schedule = z.infer<typeof scheduleSchema>

export const syncSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant'), h: z.number().int().min(1) }),
  z.object({
    kind: z.literal('qsr'),
    hBase: z.number().int().min(1),
    alpha: z.number().min(0),
    hMax: z.number().int().min(1).optional(),
  }),
])
export type SyncRule = z.infer<typeof syncSchema>

/**
 * ssgd: the large-batch recipe of Goyal et al. (ALGORITHMS.md §2.1). `linear`: the peak lr is
 * lr · B/referenceBatch with B the global batch of each step (the samples all-reduced that step,
 * so it follows the group as peers come and go, §2.4), and warmup ramps from the base lr up to
 * that peak. The default reference batch is Goyal's 256 (lr 0.1 per 256 samples).
 */
export const lrScalingSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }),
  z.object({ kind: z.literal('linear'), referenceBatch: z.number().int().min(1).max(1 << 24).default(256) }),
])
export type LrScaling = z.infer<typeof lrScalingSchema>

export const iceServerSchema = z.object({
  urls: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  username: z.string().optional(),
  credential: z.string().optional(),
})

const GOSSIP_TOPOLOGIES: readonly TopologyName[] = ['ring', 'torus', 'exponential', 'one-peer-exponential', 'clique']

/** The topologies each algorithm runs on (the config check, the host form and the tests read this). */
const ALLOWED_TOPOLOGIES: Record<AlgorithmName, readonly TopologyName[]> = {
  ssgd: ['clique'], 'local-sgd': ['clique'], 'local-adamw': ['clique'], 'lap-sgd': ['clique'],
  asgd: ['star'], 'od-sgd': ['star'],
  dpsgd: GOSSIP_TOPOLOGIES, dmsgd: GOSSIP_TOPOLOGIES,
  // On the directed exponential graphs DecentLaM mixes with (W + Wᵀ)/2 (shared/topology.ts).
  decentlam: GOSSIP_TOPOLOGIES,
  'ad-psgd': ['ring', 'torus', 'clique'],
}

export function allowedTopologies(algorithm: AlgorithmName): readonly TopologyName[] {
  return ALLOWED_TOPOLOGIES[algorithm]
}

const TOPOLOGY_RULE: Record<AlgorithmName, string> = (() => {
  const rule = {} as Record<AlgorithmName, string>
  for (const a of ['ssgd', 'local-sgd', 'local-adamw', 'lap-sgd'] as const) rule[a] = `${a} averages over the whole group: use topology 'clique'`
  for (const a of ['asgd', 'od-sgd'] as const) rule[a] = `${a} needs topology 'star' (parameter server)`
  for (const a of ['dpsgd', 'dmsgd', 'decentlam'] as const) rule[a] = `${a} is decentralized: 'star' is for asgd/od-sgd`
  rule['ad-psgd'] = "ad-psgd gossips over an undirected graph: use 'ring', 'torus' or 'clique'"
  return rule
})()

export const roomConfigSchema = z
  .object({
    algorithm: z.enum(ALGORITHMS),
    topology: z.enum(TOPOLOGIES),
    dataset: z.enum(DATASETS),
    model: z.enum(MODELS),
    partition: partitionSchema,
    /** Per-peer minibatch size. */
    batchSize: z.number().int().min(1).max(4096),
    /** Training length in (global) steps; schedules and QSR's H cap use it. */
    totalSteps: z.number().int().min(1).max(10_000_000),
    lr: z.number().gt(0).max(100),
    momentum: z.number().min(0).lt(1),
    weightDecay: z.number().min(0).max(1),
    schedule: scheduleSchema,
    /** ssgd: linear lr scaling with the global batch, warmup from the base lr (§2.1). */
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
    adam: z.object({ beta1: z.number().min(0).lt(1), beta2: z.number().min(0).lt(1), eps: z.number().gt(0) }),
    /** od-sgd: local compensating step. */
    localLr: z.number().min(0).max(100),
    localOptimizer: z.enum(['sgd', 'cadcasgd']),
    dcLambda: z.number().min(0),
    /** od-sgd / ssgd-style warm start length in steps. */
    warmStartSteps: z.number().int().min(0),
    /** lap-sgd: concurrent Hogwild updaters per tab. */
    updaters: z.number().int().min(1).max(16),
    compression: z.enum(COMPRESSIONS),
    /** Named deadline for a neighbour's message in a synchronous step (§9.2). */
    stepDeadlineMs: z.number().int().min(50).max(600_000),
    /** After this many consecutive missed deadlines a neighbour is reported as suspect. */
    suspectAfterMisses: z.number().int().min(1).max(1000),
    /** Largest accepted message (bytes) on a data channel; bigger ones are rejected. */
    maxMessageBytes: z.number().int().min(1024).max(1 << 30),
    /** STUN/TURN servers for real deployments; empty on a LAN and in tests. */
    iceServers: z.array(iceServerSchema).max(16),
    /** Seed for initial weights and data shards. */
    seed: z.number().int().min(0),
  })
  .superRefine((c, ctx) => {
    const need = (ok: boolean, path: string, message: string) => {
      if (!ok) ctx.addIssue({ code: 'custom', path: [path], message })
    }
    need(allowedTopologies(c.algorithm).includes(c.topology), 'topology', TOPOLOGY_RULE[c.algorithm])
    if (c.sync.kind === 'qsr' && c.sync.hMax !== undefined)
      need(c.sync.hMax >= c.sync.hBase, 'sync', 'sync.hMax must be ≥ sync.hBase')
    need(c.schedule.warmupSteps < c.totalSteps || c.schedule.warmupSteps === 0, 'schedule', 'schedule.warmupSteps must be < totalSteps')
    if (c.algorithm === 'lap-sgd') need(c.updaters >= 1, 'updaters', 'lap-sgd needs updaters ≥ 1')
    need(c.lrScaling.kind === 'none' || c.algorithm === 'ssgd', 'lrScaling',
      "lrScaling 'linear' is the SSGD large-batch recipe (global batch = the all-reduce group's): use it with algorithm 'ssgd'")
  })

export type RoomConfig = z.infer<typeof roomConfigSchema>

/** Defaults shared by every algorithm (a small MNIST MLP on a ring, ALGORITHMS.md §3 defaults). */
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
}

/** Per-algorithm overrides of BASE_DEFAULTS (sources: ALGORITHMS.md §2–8, §11). */
export const ALGORITHM_DEFAULTS: Record<AlgorithmName, Partial<RoomConfig>> = {
  ssgd: { topology: 'clique', lr: 0.1, schedule: { kind: 'cosine', warmupSteps: 100, minLr: 0 } },
  dpsgd: { topology: 'ring' },
  dmsgd: { topology: 'ring' },
  decentlam: { topology: 'exponential' },
  'local-sgd': { topology: 'clique', lr: 0.1, sync: { kind: 'qsr', hBase: 2, alpha: 0.2 }, schedule: { kind: 'cosine', warmupSteps: 150, minLr: 0 } },
  'local-adamw': {
    topology: 'clique', lr: 0.002, weightDecay: 0.05, momentum: 0,
    sync: { kind: 'qsr', hBase: 4, alpha: 0.0004 }, schedule: { kind: 'cosine', warmupSteps: 150, minLr: 1e-6 },
  },
  'lap-sgd': { topology: 'clique', lr: 0.05, momentum: 0, batchSize: 16, updaters: 2, sync: { kind: 'constant', h: 8 } },
  asgd: { topology: 'star', lr: 0.05, momentum: 0.9 },
  'od-sgd': { topology: 'star', lr: 0.05, momentum: 0.9, localLr: 0.25, warmStartSteps: 20 },
  'ad-psgd': { topology: 'ring', lr: 0.05, momentum: 0 },
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export type ConfigResult = { ok: true; config: RoomConfig } | { ok: false; error: string; field: string }

/** Merges defaults for the requested algorithm under `input`, validates, and names the bad field on error. */
export function parseRoomConfig(input: unknown): ConfigResult {
  if (input !== undefined && !isPlainObject(input)) return { ok: false, error: 'config must be a JSON object', field: '' }
  const raw = (input ?? {}) as Record<string, unknown>
  const algoParse = z.enum(ALGORITHMS).optional().safeParse(raw.algorithm)
  if (!algoParse.success)
    return { ok: false, field: 'algorithm', error: `algorithm: must be one of ${ALGORITHMS.join(', ')}` }
  const algorithm = algoParse.data ?? BASE_DEFAULTS.algorithm
  const merged: Record<string, unknown> = { ...BASE_DEFAULTS, ...ALGORITHM_DEFAULTS[algorithm], ...raw, algorithm }
  // Nested objects: merge field-wise so {adam:{beta2:0.99}} keeps the other defaults.
  if (isPlainObject(raw.adam)) merged.adam = { ...BASE_DEFAULTS.adam, ...raw.adam }
  const totalSteps = typeof raw.totalSteps === 'number' && Number.isInteger(raw.totalSteps) && raw.totalSteps >= 1
    ? raw.totalSteps : BASE_DEFAULTS.totalSteps
  if (raw.schedule === undefined || isPlainObject(raw.schedule))
    merged.schedule = mergeSchedule(defaultSchedule(algorithm, totalSteps), (raw.schedule ?? {}) as Record<string, unknown>)
  const unknownKeys = Object.keys(raw).filter((k) => !(k in BASE_DEFAULTS))
  if (unknownKeys.length) return { ok: false, field: unknownKeys[0], error: `${unknownKeys[0]}: unknown config field` }
  const r = roomConfigSchema.safeParse(merged)
  if (r.success) return { ok: true, config: r.data }
  const issue = r.error.issues[0]
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

export function defaultConfig(algorithm: AlgorithmName = 'dpsgd', totalSteps?: number): RoomConfig {
  const r = parseRoomConfig(totalSteps === undefined ? { algorithm } : { algorithm, totalSteps })
  if (!r.ok) throw new Error(r.error)
  return r.config
}

/** One plain-language line and the source paper per algorithm (used by the host UI and docs). */
export const ALGORITHM_INFO: Record<AlgorithmName, { title: string; blurb: string; paper: string }> = {
  ssgd: { title: 'Synchronous SGD', blurb: 'Everyone averages gradients every step: the classic data-parallel baseline.', paper: 'Goyal et al. 2017, arXiv 1706.02677' },
  dpsgd: { title: 'Decentralized SGD (D-PSGD)', blurb: 'Each peer averages with its ring neighbours only — no global barrier.', paper: 'Lian et al., NeurIPS 2017; Zhang et al., arXiv 2112.01433' },
  dmsgd: { title: 'Decentralized momentum SGD', blurb: 'Local heavy-ball momentum plus neighbour averaging (the DecentLaM baseline).', paper: 'Yuan et al., ICCV 2021 (baseline)' },
  decentlam: { title: 'DecentLaM', blurb: 'Decentralized momentum that removes the bias momentum adds on non-iid data.', paper: 'Yuan et al., ICCV 2021, arXiv 2104.11981' },
  'local-sgd': { title: 'Local SGD + QSR', blurb: 'Train alone for H steps, then average; H grows as the learning rate decays.', paper: 'Gu et al., ICLR 2024, arXiv 2310.14423' },
  'local-adamw': { title: 'Local AdamW + QSR', blurb: 'Local SGD with AdamW as the inner optimizer, synchronised by the quadratic rule.', paper: 'Gu et al., ICLR 2024, arXiv 2310.14423' },
  'lap-sgd': { title: 'Asynchronous local SGD', blurb: 'Several workers per tab update one model Hogwild-style while averaging runs in the background.', paper: 'Chatterjee et al., ICLR 2021 submission' },
  asgd: { title: 'Asynchronous SGD', blurb: 'A parameter server applies each gradient as soon as it arrives.', paper: 'Baseline of Xu et al., arXiv 2005.06728' },
  'od-sgd': { title: 'One-step-delay SGD', blurb: 'Workers keep computing while the server step is in flight, compensating locally.', paper: 'Xu et al., arXiv 2005.06728' },
  'ad-psgd': { title: 'Asynchronous decentralized SGD', blurb: 'Random pairs of peers average whenever they are ready — nobody waits for anyone.', paper: 'Lian et al., ICML 2018' },
}
