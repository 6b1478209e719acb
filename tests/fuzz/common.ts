import fc from 'fast-check'

/**
 * What every fuzz target shares: the seed, the run count and one result shape, so the vitest file
 * (a few thousand cases, CI) and `npm run fuzz` (≥ 100,000 per target) run the same properties.
 */

/** The fixed seed every run uses unless FUZZ_SEED overrides it (a failure prints the seed to replay). */
export const DEFAULT_SEED = 20_240_611

export function fuzzSeed(): number {
  const raw = process.env.FUZZ_SEED
  if (raw === undefined || raw.trim() === '') return DEFAULT_SEED
  const n = Number(raw)
  if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED: must be an integer, got '${raw}'`)
  return n | 0
}

export interface FuzzOptions {
  numRuns: number
  seed: number
  /** fast-check's counterexample path (FUZZ_PATH) to replay one failure. */
  path?: string
}

export interface TargetResult {
  target: string
  cases: number
  seconds: number
  casesPerSec: number
  passed: boolean
  seed: number
  /** On failure: fast-check's path to replay it (with the same seed), and what went wrong. */
  path: string | null
  failure: string | null
  /** Outcome counts (status codes, error codes, …): what the cases actually exercised. */
  outcomes: Record<string, number>
}

/** Counts named outcomes, for the report (a target whose cases are all rate-limited tests little). */
export class Tally {
  readonly counts = new Map<string, number>()
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort((a, b) => b[1] - a[1]))
  }
}

/** fast-check's parameters for a run: seeded, and `endOnFailure` where shrinking would replay against a changed server. */
export function checkParams(opts: FuzzOptions, shrink: boolean): fc.Parameters<unknown> {
  return {
    seed: opts.seed,
    numRuns: opts.numRuns,
    ...(opts.path ? { path: opts.path } : {}),
    endOnFailure: !shrink,
    // The default 1 s timeout per case is far above a case; a stuck case is a failure, not a hang.
    timeout: 30_000,
    markInterruptAsFailure: true,
  }
}

/** The run's outcome as one record; `extra` is a failure found after the cases (a crash, a dead server). */
export function toResult(
  target: string, details: fc.RunDetails<unknown>, seconds: number, outcomes: Tally, extra: string | null = null,
): TargetResult {
  const cases = details.failed ? details.numRuns : details.numRuns + details.numSkips
  const err = details.errorInstance
  const why = err instanceof Error ? err.message : err != null ? show(err) : null
  const report = details.failed
    ? [why && `Error: ${why}`, `replay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath}`, show(fc.defaultReportMessage(details) ?? 'property failed', 3000)]
      .filter(Boolean).join('\n')
    : null
  const failure = [report, extra].filter((s): s is string => !!s).join('\n') || null
  return {
    target,
    cases,
    seconds: Math.round(seconds * 100) / 100,
    casesPerSec: Math.round(cases / Math.max(seconds, 1e-3)),
    passed: failure === null,
    seed: details.seed,
    path: details.counterexamplePath,
    failure,
    outcomes: outcomes.toJSON(),
  }
}

/** Short, printable form of any value (payloads can be megabytes of binary). */
export function show(v: unknown, max = 600): string {
  let s: string
  try {
    s = fc.stringify(v)
  } catch {
    s = String(v)
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s
}

/**
 * Process-level failures while a target runs: an unhandled rejection or an uncaught exception
 * anywhere (server or client side of the loopback) fails the target.
 */
export function trackProcessFailures(): { failures: string[]; stop(): void } {
  const failures: string[] = []
  const onRejection = (reason: unknown) => failures.push(`unhandled rejection: ${reason instanceof Error ? reason.stack : show(reason)}`)
  const onException = (err: Error) => failures.push(`uncaught exception: ${err.stack ?? String(err)}`)
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  return {
    failures,
    stop() {
      process.off('unhandledRejection', onRejection)
      process.off('uncaughtException', onException)
    },
  }
}

/** Keys that probe prototype handling; set with defineProperty so `__proto__` is an own key, as JSON.parse makes it. */
export const HOSTILE_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'prototype', '', ' ', 'a.b', '0'] as const

export function withOwnKey(obj: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const k of Object.keys(obj)) Object.defineProperty(copy, k, { value: obj[k], enumerable: true, writable: true, configurable: true })
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true })
  return copy
}

export function withoutKey(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const k of Object.keys(obj)) if (k !== key) Object.defineProperty(copy, k, { value: obj[k], enumerable: true, writable: true, configurable: true })
  return copy
}

/** Long strings: mostly a few KB, sometimes past every limit (200 KB). */
export const hugeString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 4096 }) },
  { weight: 1, arbitrary: fc.nat({ max: 200_000 }) },
).map((n) => 'x'.repeat(n))

/** Values that break naive validation: non-finite, out of range, wrong types, huge. */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    NaN, Infinity, -Infinity, -0, -1, 0, 1, 0.5, 1e308, -1e308, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e-320,
    '', ' ', '0', 'NaN', 'true', 'null', '__proto__', null, true, false, [], {}, [null], { '': {} },
  ),
  fc.string({ minLength: 0, maxLength: 20 }),
  fc.double(),
  fc.integer(),
  hugeString,
)

/** Random JSON-ish value (fc.anything without the exotic parts that no wire format carries). */
export const jsonish: fc.Arbitrary<unknown> = fc.anything({
  maxDepth: 3, maxKeys: 6, withNullPrototype: true, withBigInt: false, withDate: false, withMap: false, withSet: false,
  withTypedArray: false, withSparseArray: true, withBoxedValues: false, withObjectString: false,
})
