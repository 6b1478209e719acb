import { describe, expect, it } from 'vitest'
import { fuzzSeed, type TargetResult } from './common'
import { fuzzConfig } from './config-target'
import { fuzzHttp } from './http-target'
import { fuzzSockets } from './socket-target'

/**
 * The seeded fuzzers at CI size: a few thousand cases in all (`npm run fuzz` runs ≥ 100,000 per
 * target). Each target starts its own real server on a loopback port. A failure message carries
 * the seed and fast-check's path to replay it (FUZZ_SEED, FUZZ_PATH; see tests/fuzz/run.ts).
 */

const seed = fuzzSeed()

function expectPassed(r: TargetResult): void {
  expect(r.passed, `${r.target} (seed ${r.seed}, path ${r.path}):\n${r.failure}`).toBe(true)
  expect(r.cases).toBeGreaterThan(0)
}

describe('seeded fuzzing', () => {
  it('the config parser never throws; accepted configs parse to themselves; refusals name the field', async () => {
    const r = await fuzzConfig({ numRuns: 8000, seed })
    expectPassed(r)
    // The inputs reach both sides: some configs accepted, refusals for many different fields.
    expect(r.outcomes.accepted).toBeGreaterThan(0)
    expect(Object.keys(r.outcomes).filter((k) => k.startsWith('refused:')).length).toBeGreaterThan(10)
  })

  it('every socket event handler: no handler failure, every error names its code, bad requests name the field', async () => {
    const r = await fuzzSockets({ numRuns: 3000, seed })
    expectPassed(r)
    // The handlers were reached past validation: joins went through and joined sockets got answers.
    expect((r.outcomes['fresh-join:ok'] ?? 0) + (r.outcomes['ack:join:ok'] ?? 0)).toBeGreaterThan(0)
    expect(Object.keys(r.outcomes).some((k) => /^error:(signal|suspect):unknown-peer$/.test(k))).toBe(true)
  })

  it('every HTTP route: never a 5xx, API errors are { error, field? }, 400s name the field', async () => {
    const r = await fuzzHttp({ numRuns: 3000, seed })
    expectPassed(r)
    expect(Object.keys(r.outcomes).some((k) => /^control [\w-]+ 200$/.test(k))).toBe(true)
    expect(r.outcomes['POST /api/rooms 201']).toBeGreaterThan(0)
  })
})
