import { fileURLToPath } from 'node:url'
import { argOf, benchServer, ensureNetns, load, median, writeResult } from './common'
import { runSwarm } from './swarm'
import { COMPUTE_THREADS, type ComputeThread } from '../client/node/node-platform'

/**
 * Issue 4 scale: N (default 16) headless Node peers, each its own OS process with real WebRTC
 * and tfjs wasm, in ONE room on this machine, with dpsgd (ring) and with local-sgd (H = 8).
 * Reports time per step (and per round for local-sgd), payload bytes per peer per step, and the
 * longest gap between successive step increases of any peer (a stall detector) inside a common
 * measurement window. 16 processes on a 2-core machine are CPU-bound: read the numbers as
 * "does it keep moving", not as speed.
 *   sh tools/netns-run.sh npx tsx bench/scale.ts [--peers 16] [--seconds 60] [--quick] [--compute-thread auto|worker|main]
 * --compute-thread: where each peer runs its tfjs model (default auto, as `npm run peer`: the
 * main thread for this mlp).
 */
const SCRIPT = fileURLToPath(import.meta.url)
await ensureNetns(SCRIPT)
const numArg = (n: string) => (argOf(n) === undefined ? undefined : Number(argOf(n)))
const quick = process.argv.includes('--quick')

export async function runScaleBench(o: { n?: number; seconds?: number; computeThread?: ComputeThread } = {}) {
  const n = o.n ?? numArg('--peers') ?? (quick ? 8 : 16)
  const computeThread = o.computeThread ?? 'auto'
  const seconds = o.seconds ?? numArg('--seconds') ?? (quick ? 20 : 60)
  const server = await benchServer()
  const rows = []
  const loadBefore = load()
  try {
    const base = { model: 'mlp', dataset: 'synthetic', batchSize: 32, totalSteps: 100000, partition: 'iid', stepDeadlineMs: 30000 }
    const H = 8
    for (const [label, config] of [
      ['dpsgd-ring', { ...base, algorithm: 'dpsgd', topology: 'ring' }],
      ['local-sgd', { ...base, algorithm: 'local-sgd', sync: { kind: 'constant', h: H }, schedule: { kind: 'constant', warmupSteps: 0 } }],
    ] as const) {
      const l0 = load()
      const r = await runSwarm(server.url, { n, config, seconds, label, warmSteps: 2, startupS: 150, env: { TABSWARM_COMPUTE_THREAD: computeThread } })
      const sps = r.peers.map((p) => p.stepsPerSec)
      const moving = r.peers.filter((p) => p.stepsInWindow > 0).length
      const row = {
        algorithm: label, peers: n, startupS: r.startupS, windowS: r.windowS,
        peersThatStepped: moving,
        stepsPerSecPerPeer: { median: +median(sps).toFixed(3), min: Math.min(...sps), max: Math.max(...sps) },
        msPerStepMedian: +(1000 / median(sps)).toFixed(0),
        msPerRoundMedian: label === 'local-sgd' ? +((1000 * H) / median(sps)).toFixed(0) : +(1000 / median(sps)).toFixed(0),
        bytesSentPerPeerPerStepMedian: median(r.peers.map((p) => p.bytesSentPerStep)),
        bytesSentPerPeerTotalMedian: median(r.peers.map((p) => p.bytesSent)),
        maxGapS: Math.max(...r.peers.map((p) => p.maxGapS)),
        medianStepGapS: median(r.peers.map((p) => p.medianStepS)),
        load: { before: l0, after: load() },
        perPeer: r.peers,
      }
      console.log(`  ${label} x${n}: ${row.peersThatStepped}/${n} peers stepped; ${row.stepsPerSecPerPeer.median} steps/s per peer (min ${row.stepsPerSecPerPeer.min}); ${row.msPerRoundMedian} ms/round; ${row.bytesSentPerPeerPerStepMedian} B/step/peer; max gap ${row.maxGapS} s (startup ${r.startupS} s)`)
      rows.push(row)
    }
  } finally {
    await server.close()
  }
  return { model: 'mlp', dataset: 'synthetic', computeThread, rows, load: { before: loadBefore, after: load() } }
}

if (process.argv[1] === SCRIPT) {
  const thread = (argOf('--compute-thread') ?? 'auto') as ComputeThread
  if (!COMPUTE_THREADS.includes(thread)) {
    console.error(`--compute-thread must be one of ${COMPUTE_THREADS.join(', ')}, got ${thread}`)
    process.exit(2)
  }
  console.log(`scale: N Node peers in one room (--compute-thread ${thread})`)
  const r = await runScaleBench({ computeThread: thread })
  console.log('wrote', writeResult(`scale${quick ? '-quick' : ''}${thread === 'auto' ? '' : `-${thread}`}`, r))
  process.exit(0)
}
