/**
 * One volunteer of the race (bench/race-lib.ts), in its own OS process (forked with tsx + IPC):
 * a real headless Node peer (createNodeSession: signaling, WebRTC via @roamhq/wrtc, the room's
 * algorithm and link profile, tfjs wasm). `race-peer.ts URL ROOM NAME`. It posts a timestamped
 * sample of its session at every test evaluation, stage or roster change, and at most every
 * 250 ms otherwise; the parent decides from them when the swarm reached a target.
 */
import { createNodeSession } from '../client/node/node-platform'

export type RaceSample = {
  t: number; step: number; stage: string; self: string | null; peers: number
  /** Latest test accuracy and how many evaluations produced it (a new value per evaluation). */
  accuracy: number | null; evals: number
  bytesSent: number; bytesReceived: number; error: string | null
}
export type RaceWorkerMessage = { ev: 'samples'; samples: RaceSample[] } | { ev: 'exit' }

const post = (m: RaceWorkerMessage) => process.send?.(m)
const [server, room, name] = process.argv.slice(2)
const session = createNodeSession({ server, room, name, backend: 'wasm', webrtc: { stack: 'wrtc' } })
let last: RaceSample | null = null
let evals = 0
let lastEvalMs = 0
const buf: RaceSample[] = []
session.subscribe((s) => {
  if (s.evalMs !== lastEvalMs) (evals++, (lastEvalMs = s.evalMs))
  const x: RaceSample = {
    t: Date.now(), step: s.step, stage: s.stage, self: s.self, peers: s.peers.length, accuracy: s.accuracy, evals,
    bytesSent: s.bytesSent, bytesReceived: s.bytesReceived, error: s.error,
  }
  const news = !last || last.evals !== x.evals || last.stage !== x.stage || last.self !== x.self || last.peers !== x.peers
  if (!news && x.t - last!.t < 250) return
  last = x
  buf.push(x)
  // Evaluations and stage changes go out at once: the parent stops the race on them.
  if (news) flush()
})
function flush(): void {
  if (buf.length) post({ ev: 'samples', samples: buf.splice(0) })
}
const timer = setInterval(flush, 500)
process.on('message', (m: { op?: string }) => {
  if (m?.op !== 'stop') return
  clearInterval(timer)
  flush()
  void Promise.race([session.leave(), new Promise((r) => setTimeout(r, 2000))]).finally(() => {
    post({ ev: 'exit' })
    process.exit(0)
  })
})
// The parent going away (a killed bench) must not leave volunteers training on their own.
process.on('disconnect', () => process.exit(0))
await session.start()
