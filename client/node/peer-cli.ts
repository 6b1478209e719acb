import { Command, Option } from 'commander'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describeConnectivity } from '../mesh/connectivity'
import { NODE_WEBRTC_STACKS, type NodeWebRtcStack } from '../mesh/node-webrtc'
import { LINK_PROFILES, type LinkProfileName } from '../../shared/link-conditions'
import { ATTACK_NAMES, parseAttack } from '../../shared/testing/attacks'
import { COMPUTE_THREADS, createNodeSession, type ComputeThread } from './node-platform'

/**
 * `npm run peer -- --server URL --room NAME [--backend wasm|cpu] [--count N]
 *   [--webrtc wrtc|node-datachannel] [--bind-address IP] [--compute-thread auto|worker|main] [--attack NAME]
 *   [--link lan|wan|slow|lossy]`
 * Starts N headless volunteers, each its own OS process (one tfjs runtime and one WebRTC stack
 * per process, like one tab each). With --count 1 (default) this process is the volunteer.
 * --attack (testing only) makes every volunteer it starts hostile (shared/testing/attacks.ts).
 */
const program = new Command()
  .name('tabswarm-peer')
  .description('Headless Node volunteer(s) for a tabswarm room')
  .requiredOption('--server <url>', 'server URL, e.g. http://127.0.0.1:8080')
  .requiredOption('--room <name>', 'room name or join code')
  .addOption(new Option('--backend <name>', 'tfjs backend').choices(['wasm', 'cpu']).default('wasm'))
  .option('--count <n>', 'number of volunteer processes', (v) => parseInt(v, 10), 1)
  .option('--name <name>', 'display name on the dashboard')
  .option('--steps <n>', 'stop after this many local steps', (v) => parseInt(v, 10))
  .option('--quiet', 'print only errors')
  .addOption(new Option('--compute-thread <where>', 'run the tfjs model on its own worker thread (the mesh stays responsive during a gradient), on the main thread, or auto: the main thread for small models (a minibatch gradient under ~10 ms), a worker otherwise').choices([...COMPUTE_THREADS]).default('auto'))
  .addOption(new Option('--webrtc <stack>', 'Node WebRTC stack').choices([...NODE_WEBRTC_STACKS]).default('wrtc'))
  // Off by default: a volunteer on a LAN must gather its LAN address, not only loopback.
  .option('--identity <file>', 'keep this volunteer\'s key pair (its peer id) in this file, created on first use, so a restart keeps its place and tenure in the room (default: $TABSWARM_IDENTITY, else a new id per process); with --count N, N files <file>-1, <file>-2, …')
  .option('--attack <name>', `testing only: makes this volunteer hostile (shared/testing/attacks.ts): ${ATTACK_NAMES.join('|')}, or NAME:VALUE; never use it in a real room`)
  .addOption(new Option('--link <profile>', 'emulated link conditions on this peer\'s links (docs/architecture.md "Link conditions"), overriding the room\'s for this peer only').choices([...LINK_PROFILES]))
  .option('--bind-address <ip>', 'node-datachannel only: bind WebRTC (ICE) sockets to this local address (127.0.0.1 inside a loopback-only namespace, where it finds no address otherwise); default: all interfaces')
program.parse()
const o = program.opts<{
  server: string; room: string; backend: 'wasm' | 'cpu'; count: number; name?: string; steps?: number; quiet?: boolean
  webrtc: NodeWebRtcStack; bindAddress?: string; computeThread: ComputeThread; identity?: string; attack?: string; link?: LinkProfileName
}>()

if (o.attack) {
  try {
    parseAttack(o.attack)
  } catch (e) {
    console.error(`--attack: ${(e as Error).message}`)
    process.exit(2)
  }
  console.error(`WARNING: --attack ${o.attack}: testing only, this volunteer is HOSTILE (it poisons what it contributes to the room)`)
}

if (o.bindAddress && o.webrtc !== 'node-datachannel') {
  console.error('--bind-address needs --webrtc node-datachannel (@roamhq/wrtc cannot bind an address)')
  process.exit(2)
}

if (!Number.isInteger(o.count) || o.count < 1 || o.count > 64) {
  console.error('--count must be an integer between 1 and 64')
  process.exit(2)
}

if (o.count > 1) {
  const self = fileURLToPath(import.meta.url)
  const children: ChildProcess[] = []
  for (let i = 0; i < o.count; i++) {
    const args = ['--import', 'tsx', self, '--server', o.server, '--room', o.room, '--backend', o.backend, '--name', `${o.name ?? 'node'}-${i + 1}`]
    if (o.steps) args.push('--steps', String(o.steps))
    if (o.quiet) args.push('--quiet')
    args.push('--webrtc', o.webrtc, '--compute-thread', o.computeThread)
    if (o.bindAddress) args.push('--bind-address', o.bindAddress)
    if (o.attack) args.push('--attack', o.attack)
    if (o.link) args.push('--link', o.link)
    // One identity per process: two processes with one key would replace each other in the room.
    if (o.identity) args.push('--identity', `${o.identity}-${i + 1}`)
    children.push(spawn(process.execPath, args, { stdio: 'inherit' }))
  }
  const stop = () => children.forEach((c) => c.kill('SIGINT'))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  let alive = children.length
  for (const c of children) c.on('exit', () => --alive === 0 && process.exit(0))
} else {
  const session = createNodeSession({
    server: o.server, room: o.room, name: o.name, backend: o.backend, maxSteps: o.steps, computeThread: o.computeThread,
    ...(o.identity ? { identityFile: o.identity } : {}),
    ...(o.attack ? { attack: o.attack } : {}),
    ...(o.link ? { link: o.link } : {}),
    webrtc: { stack: o.webrtc, ...(o.bindAddress ? { bindAddress: o.bindAddress } : {}) },
  })
  let lastLine = 0
  session.subscribe((s) => {
    if (o.quiet) {
      if (s.stage === 'error') console.error(`[${o.name ?? s.self}] ${s.error}`)
      return
    }
    const now = Date.now()
    if (now - lastLine < 2000 && s.stage === 'training') return
    lastLine = now
    const acc = s.accuracy === null ? '–' : `${(s.accuracy * 100).toFixed(1)}%`
    console.log(`[${o.name ?? s.self ?? 'peer'}]${o.attack ? ` [HOSTILE: ${o.attack}]` : ''} ${s.stage} step ${s.step} loss ${s.loss?.toFixed(3) ?? '–'} acc ${acc} ` +
      `${s.stepsPerSec.toFixed(1)} steps/s peers ${s.peers.length} sent ${(s.bytesSent / 1e6).toFixed(1)} MB` +
      (s.connectivity && describeConnectivity(s.connectivity) ? ` links ${describeConnectivity(s.connectivity)}` : ''))
  })
  const leave = async () => {
    await session.leave()
    process.exit(0)
  }
  process.on('SIGINT', leave)
  process.on('SIGTERM', leave)
  await session.start()
  await session.finished()
  process.exit(session.snapshot().stage === 'error' ? 1 : 0)
}
