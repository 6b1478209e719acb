import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import {
  ALGORITHMS, COMPRESSIONS, DATASETS, MAX_SEED, MAX_TOTAL_STEPS, MODELS, TOPOLOGIES, allowedTopologies, parseRoomConfig,
  type AlgorithmName,
} from '../../shared/config'
import {
  HOSTILE_KEYS, Tally, checkParams, jsonish, nastyValue, show, toResult, withOwnKey, withoutKey, type FuzzOptions, type TargetResult,
} from './common'

/**
 * The config parser (shared/config.ts parseRoomConfig), what POST /api/rooms, a host's new run,
 * Node peers and the simulator all go through. Inputs: anything at all, and configs that are
 * valid or nearly so with random damage (unknown keys at any depth, including `__proto__`,
 * out-of-range and non-finite numbers, wrong types, huge strings).
 *
 * Property: it never throws; an accepted config parses again to itself (also after a JSON round
 * trip, as it travels); a refused one says which field, as `field` and as the error's prefix.
 */

type Obj = Record<string, unknown>
const isPlainObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

const num = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true })
const int = (min: number, max: number) => fc.integer({ min, max })

const schedule: fc.Arbitrary<Obj> = fc.oneof(
  fc.record({ kind: fc.constant('constant'), warmupSteps: int(0, 100) }, { requiredKeys: ['kind'] }),
  fc.record({ kind: fc.constantFrom('cosine', 'linear'), warmupSteps: int(0, 100), minLr: num(0, 100) }, { requiredKeys: [] }),
  fc.record({
    kind: fc.constant('step'), warmupSteps: int(0, 100),
    milestones: fc.array(num(0.01, 0.99), { maxLength: 4 }), gamma: num(0.01, 1),
  }, { requiredKeys: [] }),
)

const sync: fc.Arbitrary<Obj> = fc.oneof(
  fc.record({ kind: fc.constant('constant'), h: int(1, 64) }),
  fc.record({ kind: fc.constant('qsr'), hBase: int(1, 16), alpha: num(0, 1), hMax: int(1, 256) }, { requiredKeys: ['kind', 'hBase', 'alpha'] }),
)

const iceServer: fc.Arbitrary<Obj> = fc.record({
  urls: fc.oneof(
    fc.constantFrom('stun:stun.example.org:3478', 'turn:turn.example.org', 'turns:t.example.org:443'),
    fc.array(fc.constantFrom('stun:a', 'turn:b', 'turns:c'), { minLength: 1, maxLength: 3 }),
  ),
  username: fc.string({ maxLength: 12 }),
  credential: fc.string({ maxLength: 12 }),
}, { requiredKeys: ['urls'] })

/** A subset of the fields, each with a value its schema accepts (cross-field rules may still refuse it). */
const plausibleConfig: fc.Arbitrary<Obj> = fc.constantFrom(...ALGORITHMS).chain((algorithm: AlgorithmName) => fc.record({
  algorithm: fc.constant(algorithm),
  topology: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...allowedTopologies(algorithm)) }, { weight: 1, arbitrary: fc.constantFrom(...TOPOLOGIES) }),
  dataset: fc.constantFrom(...DATASETS),
  model: fc.constantFrom(...MODELS),
  partition: fc.oneof(fc.constant('iid'), int(1, 10).map((c) => `label-skew:${c}`), fc.constantFrom('dirichlet:0.5', 'dirichlet:1000', 'dirichlet:0.01')),
  batchSize: int(1, 4096),
  totalSteps: int(1, MAX_TOTAL_STEPS),
  lr: num(1e-6, 100),
  momentum: num(0, 0.99),
  weightDecay: num(0, 1),
  schedule,
  lrScaling: fc.oneof(fc.constant({ kind: 'none' }), fc.record({ kind: fc.constant('linear'), referenceBatch: int(1, 1 << 24) }, { requiredKeys: ['kind'] })),
  resyncEvery: int(0, 1_000_000),
  order: fc.constantFrom('awc', 'atc'),
  sync,
  averageOptimizerState: fc.boolean(),
  adam: fc.record({ beta1: num(0, 0.99), beta2: num(0, 0.999), eps: num(1e-12, 1) }, { requiredKeys: [] }),
  localLr: num(0, 100),
  localOptimizer: fc.constantFrom('sgd', 'cadcasgd'),
  dcLambda: num(0, 100),
  warmStartSteps: int(0, 1000),
  updaters: int(1, 16),
  compression: fc.constantFrom(...COMPRESSIONS),
  stepDeadlineMs: int(50, 600_000),
  suspectAfterMisses: int(1, 1000),
  maxMessageBytes: int(1024, 1 << 30),
  iceServers: fc.array(iceServer, { maxLength: 3 }),
  seed: int(0, MAX_SEED),
}, { requiredKeys: [] }))

const NESTED = ['schedule', 'sync', 'adam', 'lrScaling'] as const
const TOP_KEYS = [
  'algorithm', 'topology', 'dataset', 'model', 'partition', 'batchSize', 'totalSteps', 'lr', 'momentum', 'weightDecay', 'schedule',
  'lrScaling', 'resyncEvery', 'order', 'sync', 'averageOptimizerState', 'adam', 'localLr', 'localOptimizer', 'dcLambda',
  'warmStartSteps', 'updaters', 'compression', 'stepDeadlineMs', 'suspectAfterMisses', 'maxMessageBytes', 'iceServers', 'seed',
] as const

const unknownKey = fc.oneof(fc.constantFrom(...HOSTILE_KEYS, 'lR', 'algorithms', 'seed ', 'Seed'), fc.string({ maxLength: 12 }))

/** One damage to a config object (applied to a copy; unknown keys are own keys, as JSON.parse makes them). */
type Mutation = (c: Obj) => Obj
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...TOP_KEYS), fc.oneof(nastyValue, jsonish)).map(([k, v]): Mutation => (c) => withOwnKey(c, k, v)) },
  { weight: 1, arbitrary: fc.tuple(unknownKey, fc.oneof(nastyValue, jsonish)).map(([k, v]): Mutation => (c) => withOwnKey(c, k, v)) },
  { weight: 2, arbitrary: fc.constantFrom(...TOP_KEYS).map((k): Mutation => (c) => withoutKey(c, k)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...NESTED), unknownKey, fc.oneof(nastyValue, jsonish)).map(([n, k, v]): Mutation => (c) => {
    const inner = c[n]
    const base = typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as Obj) : {}
    return withOwnKey(c, n, withOwnKey(base, k, v))
  }) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('schedule.warmupSteps', 'schedule.milestones', 'schedule.gamma', 'schedule.kind', 'sync.h', 'sync.hBase',
    'sync.hMax', 'sync.alpha', 'sync.kind', 'adam.beta1', 'adam.eps', 'lrScaling.kind', 'lrScaling.referenceBatch', 'iceServers.0.urls',
    'iceServers.0.username', 'iceServers.0'), fc.oneof(nastyValue, jsonish)).map(([path, v]): Mutation => (c) => setIn(c, path.split('.'), v) as Obj) },
)

/** A copy of `obj` with `value` at `path` (array indices included), building objects where there are none. */
function setIn(obj: unknown, [head, ...rest]: string[], value: unknown): unknown {
  if (Array.isArray(obj)) {
    const copy: unknown[] = [...obj]
    const i = Number(head)
    copy[i] = rest.length ? setIn(copy[i], rest, value) : value
    return copy
  }
  const base = isPlainObject(obj) ? obj : {}
  return withOwnKey(base, head, rest.length ? setIn(base[head], rest, value) : value)
}

const damagedConfig = fc.tuple(plausibleConfig, fc.array(mutation, { minLength: 0, maxLength: 3 }))
  .map(([c, ms]) => ms.reduce((acc, m) => m(acc), c))

/** The same objects after a trip through JSON text, where `"__proto__"` becomes an own key. */
const viaJsonText = fc.tuple(damagedConfig, fc.option(fc.constantFrom('__proto__', 'constructor', 'prototype')), jsonish).map(([c, k, v]) => {
  let text: string
  try {
    text = JSON.stringify(c) ?? 'null'
  } catch {
    text = '{}'
  }
  const inner = JSON.stringify(v) ?? 'null'
  const injected = k !== null && text.startsWith('{') && text.length > 2 ? `{"${k}":${inner},${text.slice(1)}` : text
  return JSON.parse(injected) as unknown
})

export const configInput: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 2, arbitrary: fc.anything() },
  { weight: 1, arbitrary: jsonish },
  { weight: 2, arbitrary: plausibleConfig },
  { weight: 6, arbitrary: damagedConfig },
  { weight: 2, arbitrary: viaJsonText },
)

/** Checks one input; throws (with the input) when the parser breaks its contract. */
export function checkConfigInput(input: unknown, tally?: Tally): void {
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).length
  const r = parseRoomConfig(input)
  if (Object.getOwnPropertyNames(Object.prototype).length !== protoBefore) throw new Error('Object.prototype was modified')
  if (r.ok) {
    tally?.add('accepted')
    const again = parseRoomConfig(r.config)
    if (!again.ok) throw new Error(`an accepted config is refused when parsed again: ${again.error}`)
    if (!isDeepStrictEqual(again.config, r.config)) throw new Error(`parse is not idempotent: ${show(r.config)} → ${show(again.config)}`)
    // As it travels (JSON: -0 arrives as 0, which is the same config).
    const text = JSON.stringify(r.config)
    const wire = parseRoomConfig(JSON.parse(text))
    if (!wire.ok || JSON.stringify(wire.config) !== text) throw new Error(`an accepted config does not survive a JSON round trip: ${text}`)
    return
  }
  const top = r.field.split('.')[0]
  tally?.add(`refused:${(TOP_KEYS as readonly string[]).includes(top) ? top : r.field === '' ? '(whole)' : '(unknown key)'}`)
  if (typeof r.error !== 'string' || r.error.trim() === '') throw new Error(`refused without an error message: ${show(r)}`)
  if (typeof r.field !== 'string') throw new Error(`refused without a field: ${show(r)}`)
  if (input !== undefined && !isPlainObject(input)) {
    // Not an object at all: the whole config is at fault, and the error says so.
    if (r.field !== 'config' || !r.error.startsWith('config: ')) throw new Error(`a non-object is refused with ${show(r)}`)
    return
  }
  if (r.field === '') throw new Error(`an object is refused without naming a field: ${show(r)}`)
  if (!r.error.startsWith(`${r.field}:`)) throw new Error(`the error does not start with its field '${r.field}:': ${show(r.error)}`)
}

export async function fuzzConfig(opts: FuzzOptions): Promise<TargetResult> {
  const tally = new Tally()
  const t0 = performance.now()
  const details = await fc.check(fc.property(configInput, (input) => checkConfigInput(input, tally)), checkParams(opts, true))
  return toResult('config-parser', details, (performance.now() - t0) / 1000, tally)
}
