import { fileURLToPath } from 'node:url'
import { benchServer, ensureNetns, load, writeResult } from './common'
import { plainLoop, runSwarm } from './swarm'

/**
 * Issue 4 swarm overhead: per-peer training steps/s inside a swarm of N headless Node peers
 * (separate processes, real WebRTC, model mlp, synthetic data, tfjs wasm) vs a plain tfjs loop on
 * the same backend and model. The machine has 2 cores, so N peers share them: the baseline runs N
 * plain loops concurrently too (same CPU contention), and overhead = 1 − swarm/plain per peer.
 *   sh tools/netns-run.sh npx tsx bench/overhead.ts [--quick]
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)
const quick = process.argv.includes('--quick')

export async function runOverheadBench(o: { n?: number; seconds?: number } = {}) {
  const n = o.n ?? 2
  const seconds = o.seconds ?? (quick ? 12 : 25)
  const batch = 32
  const loadBefore = load()
  const plains = await Promise.all(Array.from({ length: n }, () => plainLoop('mlp', batch, seconds / 2)))
  const plainLocal = plains.reduce((a, p) => a + p.localStepsPerSec, 0) / n
  const plainGrad = plains.reduce((a, p) => a + p.gradientStepsPerSec, 0) / n
  // The baseline is the faster of the two plain loops (the fairest "plain tfjs" reference).
  const plainBest = Math.max(plainLocal, plainGrad)
  console.log(`  plain tfjs loop (${n} concurrent, ${plains[0].backend}): ${plainLocal.toFixed(1)} steps/s on device, ${plainGrad.toFixed(1)} steps/s with gradient read-back`)
  const server = await benchServer()
  const rows = []
  try {
    const base = { model: 'mlp', dataset: 'synthetic', batchSize: batch, totalSteps: 100000, partition: 'iid' }
    for (const [label, config, baseline] of [
      ['local-sgd', { ...base, algorithm: 'local-sgd', sync: { kind: 'constant', h: 8 }, schedule: { kind: 'constant', warmupSteps: 0 } }, plainBest],
      ['dpsgd', { ...base, algorithm: 'dpsgd', topology: 'ring' }, plainBest],
    ] as const) {
      const r = await runSwarm(server.url, { n, config, seconds, label, warmSteps: 5 })
      const per = r.peers.reduce((a, p) => a + p.stepsPerSec, 0) / n
      const row = {
        algorithm: label, peers: n, swarmStepsPerSec: +per.toFixed(2), plainStepsPerSec: +baseline.toFixed(2),
        overheadPct: +((1 - per / baseline) * 100).toFixed(1),
        overheadVsLocalStepLoopPct: +((1 - per / plainLocal) * 100).toFixed(1),
        overheadVsGradientLoopPct: +((1 - per / plainGrad) * 100).toFixed(1),
        startupS: r.startupS, windowS: r.windowS, perPeer: r.peers,
      }
      console.log(`  ${label} x${n}: ${per.toFixed(2)} steps/s per peer vs plain ${baseline.toFixed(2)} → overhead ${row.overheadPct} % (vs on-device loop ${row.overheadVsLocalStepLoopPct} %, vs read-back loop ${row.overheadVsGradientLoopPct} %)`)
      rows.push(row)
    }
  } finally {
    await server.close()
  }
  return { model: 'mlp', dataset: 'synthetic', batch, plain: { perProcess: plains, localStepsPerSec: +plainLocal.toFixed(2), gradientStepsPerSec: +plainGrad.toFixed(2), baselineStepsPerSec: +plainBest.toFixed(2) }, rows, load: { before: loadBefore, after: load() } }
}

if (process.argv[1] === SCRIPT) {
  console.log('overhead: swarm vs plain tfjs loop')
  const r = await runOverheadBench()
  console.log('wrote', writeResult(quick ? 'overhead-quick' : 'overhead', r))
  process.exit(0)
}
