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
 *                                   page-load bytes and time to first step (needs a build);
 *                                   `npm run bench -- race [--links wan --algorithms a,b …]`: time,
 *                                   bytes and rounds to target accuracy (docs/reproductions.md)
 */
const quick = process.argv.includes('--quick')
/**
 * Positions in argv of a named benchmark's own flags and their values (`npm run bench -- race
 * --links wan --repeat 1`): every `--flag` but ours, and the word after it. They go to race and signaling only.
 */
function passThroughAt(): Set<number> {
  const argv = process.argv.slice(2)
  const ours = ['--quick', '--calibration']
  const at = new Set<number>()
  argv.forEach((a, i) => {
    if (!a.startsWith('--') || ours.includes(a)) return
    at.add(i)
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) at.add(i + 1)
  })
  return at
}
const passThrough = () => process.argv.slice(2).filter((_, i) => passThroughAt().has(i))
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
  // Time, bytes and sync rounds to target accuracy per algorithm over real WebRTC under link profiles (docs/reproductions.md).
  race: ['bench/race.ts', ...q, ...passThrough()],
  // Up to 2,000 volunteer sockets without WebRTC against the signaling server (docs/benchmarks.md "Signaling load").
  signaling: ['bench/signaling.ts', ...q, ...passThrough()],
}
const wanted = process.argv.slice(2).filter((a, i) => !a.startsWith('--') && !passThroughAt().has(i))
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
