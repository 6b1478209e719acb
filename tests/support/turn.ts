import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Real coturn (Debian's `turnserver`) and isolated network namespaces for TURN tests. Everything
 * here must run inside the test namespace of tools/netns-run.sh (it adds addresses and veth
 * links there), as root.
 */

export const TURNSERVER = '/usr/bin/turnserver'
export const REALM = 'tabswarm'

/** Why TURN namespace tests cannot run here, or null when they can. */
export function turnTestUnavailable(): string | null {
  if (!existsSync(TURNSERVER)) return `${TURNSERVER} is missing (apt-get install coturn)`
  if (process.env.TABSWARM_NETNS !== '1') return 'not inside the test namespace (run through tools/netns-run.sh)'
  if (process.getuid?.() !== 0) return 'needs root inside the namespace (veth links, child namespaces)'
  return null
}

export interface TurnServer {
  /** The address and port it listens on (UDP and TCP). */
  host: string
  port: number
  /** `turn:HOST:PORT?transport=udp` */
  url: string
  /** Everything coturn logged so far. */
  log(): string
  stop(): Promise<void>
}

/** A free TCP port on `host` (coturn needs a number; a fresh namespace has nothing else on it). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Resolves once a TCP connection to host:port succeeds, polling every 50 ms up to `ms`. */
async function waitListening(host: string, port: number, ms: number, proc: ChildProcess, log: () => string): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, host, () => { c.destroy(); resolve(true) })
      c.once('error', () => resolve(false))
    })
    if (ok) return
    if (proc.exitCode !== null) throw new Error(`turnserver exited (${proc.exitCode}): ${log().slice(-2000)}`)
    if (Date.now() > end) throw new Error(`turnserver did not listen on ${host}:${port} within ${ms} ms: ${log().slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * coturn with the TURN REST API (`use-auth-secret`, `static-auth-secret`), plain UDP/TCP only,
 * relaying on `host`. `-c /dev/null`: Debian's /etc/turnserver.conf logs to syslog; the pid file
 * and user database go to a temporary directory, not /var.
 */
export async function startTurnServer(o: { secret: string; host: string; allowLoopbackPeers?: boolean; verbose?: boolean }): Promise<TurnServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tabswarm-coturn-'))
  const port = await freePort(o.host)
  const args = [
    '-c', '/dev/null', '--use-auth-secret', `--static-auth-secret=${o.secret}`, `--realm=${REALM}`,
    '--no-cli', '--no-tls', '--no-dtls', `--listening-ip=${o.host}`, `--relay-ip=${o.host}`, `--listening-port=${port}`,
    '--log-file=stdout', '--simple-log', `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`,
    ...(o.allowLoopbackPeers ? ['--allow-loopback-peers'] : []),
    // Verbose: one line per allocation and permission (with the username), none per data packet.
    ...(o.verbose ? ['--verbose'] : []),
  ]
  const proc = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  // Bounded: a long test must not grow the log without limit.
  const append = (d: Buffer) => { out = (out + d.toString()).slice(-1_000_000) }
  proc.stdout?.on('data', append)
  proc.stderr?.on('data', append)
  const stop = () => new Promise<void>((resolve) => {
    const done = () => { rmSync(dir, { recursive: true, force: true }); resolve() }
    if (proc.exitCode !== null || proc.signalCode !== null) return done()
    proc.once('exit', done)
    proc.kill('SIGTERM')
    setTimeout(() => proc.kill('SIGKILL'), 3000).unref()
  })
  try {
    await waitListening(o.host, port, 15_000, proc, () => out)
  } catch (e) {
    await stop()
    throw e
  }
  return { host: o.host, port, url: `turn:${o.host}:${port}?transport=udp`, log: () => out, stop }
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout || `exit ${r.status}`}`)
  return r.stdout
}

/**
 * A child network namespace joined to this one by a veth pair `/24` subnet: it reaches this
 * namespace's `gateway` address and the `routes` given (host routes via the gateway), nothing
 * else. This namespace does not forward (a new namespace's ip_forward is 0), so two children
 * cannot reach each other through it. Held by a `sleep` process; `exec` runs a command in it.
 */
export interface ChildNamespace {
  /** Its own address on the veth link. */
  address: string
  gateway: string
  /** argv prefix that runs a command inside it (nsenter). */
  exec(cmd: string, args: string[]): [string, string[]]
  /** Runs a command inside it and returns its status and output (for reachability checks). */
  probe(cmd: string, args: string[]): { status: number | null; output: string }
  close(): void
}

export function childNamespace(name: string, subnet: number, routes: string[]): ChildNamespace {
  const holder = spawn('unshare', ['--net', 'sleep', '3600'], { stdio: 'ignore' })
  const pid = holder.pid
  if (!pid) throw new Error('unshare --net failed to start')
  const nsPath = `/proc/${pid}/ns/net`
  const gateway = `10.99.${subnet}.1`
  const address = `10.99.${subnet}.2`
  const outer = `${name}0`
  const inner = `${name}1`
  const inside = (args: string[]) => run('nsenter', [`--net=${nsPath}`, ...args])
  // The holder must have unshared before its namespace is ours to configure.
  const end = Date.now() + 5000
  const self = run('readlink', ['/proc/self/ns/net']).trim()
  while (run('readlink', [nsPath]).trim() === self) {
    if (Date.now() > end) throw new Error('child namespace did not appear')
    spawnSync('sleep', ['0.02'])
  }
  run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner])
  run('ip', ['link', 'set', inner, 'netns', String(pid)])
  run('ip', ['addr', 'add', `${gateway}/24`, 'dev', outer])
  run('ip', ['link', 'set', outer, 'up'])
  inside(['ip', 'link', 'set', 'lo', 'up'])
  inside(['ip', 'addr', 'add', `${address}/24`, 'dev', inner])
  inside(['ip', 'link', 'set', inner, 'up'])
  for (const r of routes) inside(['ip', 'route', 'add', `${r}/32`, 'via', gateway])
  return {
    address,
    gateway,
    exec: (cmd, args) => ['nsenter', [`--net=${nsPath}`, cmd, ...args]],
    probe: (cmd, args) => {
      const r = spawnSync('nsenter', [`--net=${nsPath}`, cmd, ...args], { encoding: 'utf8' })
      return { status: r.status, output: `${r.stdout}${r.stderr}` }
    },
    close: () => {
      holder.kill('SIGKILL')
      spawnSync('ip', ['link', 'del', outer])
    },
  }
}

/** Adds `address/32` to this namespace's loopback: a "public" service address the children route to. */
export function addServiceAddress(address: string): void {
  run('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo'])
}
