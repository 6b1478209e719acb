import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { load } from './common'

/**
 * `npm run bench`: every benchmark in sequence, each in its own process (the WebRTC ones re-run
 * themselves inside tools/netns-run.sh). JSON goes to bench/results/.
 *   npm run bench                 mixing, codec, transport, overhead, server-flood, scale, tab-thread
 *   npm run bench -- --quick      shorter runs (writes *-quick.json) plus calibration --quick
 *   npm run bench -- --calibration  also the full docs/algorithms.md "Calibrations" calibrations (tens of minutes on 2 cores)
 *   npm run bench -- NAME [NAME…]   only these benchmarks (with --quick: their quick runs), e.g.
 *                                   `npm run bench -- attacks`: the attack catalogue against each
 *                                   family, robust off/on (docs/security.md "Attacks on training";
 *                                   ~20 min, not part of the default list); `npm run bench -- load`:
 *                                   page-load bytes and time to first step (needs a build)
 */
const quick = process.argv.includes('--quick')
const withCal = quick || process.argv.includes('--calibration')
const q = quick ? ['--quick'] : []
const all: [string, string[]][] = [
  ['mixing', ['bench/mixing.ts']],
  ['codec', ['bench/codec.ts', ...q]],
  ['transport', ['bench/transport.ts', ...q]],
  ['overhead', ['bench/overhead.ts', ...q]],
  // The signaling server's RSS and event-loop delay under the hostile floods, against idle.
  ['server-flood', ['bench/server-flood.ts', ...q]],
  ['scale', ['bench/scale.ts', ...q]],
  // Real Chromium tabs against the built client (built below when dist/ is missing).
  ['tab-thread', ['bench/tab-thread.ts', ...q]],
  ...(withCal ? [['calibration', ['bench/calibration.ts', ...q]] as [string, string[]]] : []),
]
/** Run only by name. */
const named: Record<string, string[]> = {
  attacks: ['bench/attacks.ts', ...q],
  calibration: ['bench/calibration.ts', ...q],
  // Bytes and time to the first training step of a fresh and a returning volunteer tab (docs/benchmarks.md "Page loads").
  load: ['bench/load.ts', ...q],
}
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const known = new Map([...all, ...Object.entries(named)])
const unknown = wanted.filter((w) => !known.has(w))
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}: one of ${[...known.keys()].join(', ')}`)
  process.exit(2)
}
const steps: [string, string[]][] = wanted.length ? wanted.map((w) => [w, known.get(w)!]) : all
const failed: string[] = []
if (steps.some(([name]) => name === 'tab-thread') && !existsSync('dist/index.html')) spawnSync('npm', ['run', 'build'], { stdio: 'inherit' })
for (const [name, args] of steps) {
  console.log(`\n== ${name} (loadavg ${load().join('/')}) ==`)
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { stdio: 'inherit' })
  console.log(`== ${name}: ${r.status === 0 ? 'ok' : `FAILED (${r.status ?? r.signal})`} in ${((performance.now() - t0) / 1000).toFixed(0)} s`)
  if (r.status !== 0) failed.push(name)
}
if (failed.length) {
  console.error(`failed: ${failed.join(', ')}`)
  process.exit(1)
}
