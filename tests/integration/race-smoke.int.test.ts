import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runRace, type RaceCase, type RaceRun, type RaceSummaryRow } from '../../bench/race-lib'
import { serverEnvironment } from '../support/e2e'

/**
 * The race harness (bench/race-lib.ts, `npm run bench -- race`, docs/reproductions.md) so it
 * cannot rot: two algorithms on the `lan` profile, two volunteer processes each with real WebRTC,
 * a small target (60 % MNIST test accuracy). Each must give a row with the time, bytes per peer
 * and sync rounds it took, and the JSON must be written. The full race is a benchmark, never a
 * timed test: nothing here asserts speed, only that the measurements exist and are consistent.
 */

const env = serverEnvironment()
const dir = mkdtempSync(join(tmpdir(), 'race-smoke-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('race smoke', () => {
  it('dpsgd and local-sgd on lan reach 60 %: time, bytes and rounds to target per row, JSON written', async () => {
    const outFile = join(dir, 'race-smoke.json')
    const cases: RaceCase[] = (['dpsgd', 'local-sgd'] as const).map((algorithm) => ({ algorithm, link: 'lan', dataset: 'mnist', partition: 'iid', seed: 0 }))
    const lines: string[] = []
    const { runs, failures } = await runRace({
      serverUrl: env.server.url, cases, outFile, name: 'race-smoke', log: (l) => lines.push(l),
      options: () => ({ peers: 2, timeLimitS: 45, startupLimitS: 45, targets: [0.6], accuracyAtS: [5] }),
    })
    expect(failures, lines.join('\n')).toEqual([])
    expect(runs.map((r) => r.label)).toEqual(['dpsgd', 'local-sgd'])
    for (const r of runs) {
      expect(r.stoppedBy, `${r.label}: ${lines.join('\n')}`).toBe('targets')
      const [t] = r.targets
      expect(t).toMatchObject({ target: 0.6, reached: true })
      expect(t.timeS!).toBeGreaterThan(0)
      expect(t.timeS!).toBeLessThanOrEqual(r.wallS)
      expect(t.bytesPerPeer!).toBeGreaterThan(0)
      expect(t.steps!).toBeGreaterThan(0)
      expect(r.curve.at(-1)!.accuracy).toBeGreaterThanOrEqual(0.6)
      expect(r.perPeer).toHaveLength(2)
    }
    const [dpsgd, localSgd] = runs as [RaceRun, RaceRun]
    // D-PSGD exchanges every step; Local SGD + QSR averages every H ≥ 2 steps.
    expect(dpsgd.targets[0].rounds).toBe(dpsgd.targets[0].steps)
    expect(localSgd.targets[0].rounds!).toBeLessThan(localSgd.targets[0].steps!)
    expect(localSgd.config).toMatchObject({ algorithm: 'local-sgd', link: 'lan', sync: { kind: 'qsr' } })

    const json = JSON.parse(readFileSync(outFile, 'utf8')) as { name: string; result: { runs: RaceRun[]; summary: RaceSummaryRow[] } }
    expect(json.name).toBe('race-smoke')
    expect(json.result.runs.map((r) => r.label)).toEqual(['dpsgd', 'local-sgd'])
    expect(json.result.summary.map((s) => [s.label, s.targets[0].reached, s.targets[0].timeS!.median > 0])).toEqual([['dpsgd', 1, true], ['local-sgd', 1, true]])
  }, 115_000)
})
