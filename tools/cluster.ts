import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command } from 'commander'

/**
 * `npm run cluster -- --workers N`: N tabswarm server processes sharing one Redis, behind
 * haproxy (deploy/haproxy.cfg), on this machine. Without --redis-url it starts its own
 * redis-server (no persistence, in a temporary directory). Tests use startCluster() to kill and
 * restart processes under a real balancer. docs/deploy.md says how to deploy the same on
 * several machines.
 */

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
/** Debian puts haproxy in /usr/sbin, which a non-root PATH may lack. */
const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy'

export interface ClusterWorker {
  index: number
  port: number
  url: string
  proc: ChildProcess
  output(): string
}

export interface Cluster {
  /** The balancer: what browsers and peers open. */
  url: string
  redisUrl: string
  workers: ClusterWorker[]
  /** Signals worker `i` (SIGKILL: a crash, no goodbye) and waits until it is gone. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>
  /** Starts worker `i` again on its port and waits until it is healthy. */
  restart(i: number): Promise<void>
  close(): Promise<void>
}

export interface ClusterOptions {
  workers: number
  /** An existing Redis; absent: a redis-server is started for the cluster and stopped with it. */
  redisUrl?: string
  /** The balancer's port (0 picks one). */
  port?: number
  host?: string
  /** Extra environment for the server processes. */
  env?: Record<string, string>
  log?: (msg: string) => void
}

/** A free TCP port on `host` (closed again before use: good enough on a machine we control). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** Polls `url` until it answers 200 (named deadline in the error). */
async function waitHealthy(what: string, url: string, ms: number, alive: () => boolean = () => true): Promise<void> {
  const until = Date.now() + ms
  let last = ''
  while (Date.now() < until) {
    if (!alive()) throw new Error(`${what} exited before it was healthy`)
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) })
      if (r.status === 200) return
      last = `HTTP ${r.status}`
    } catch (err) {
      last = String(err)
    }
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`cluster.${what}: not healthy within ${ms} ms (${last})`)
}

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
    proc.once('exit', () => resolve())
  })
}

/** The haproxy configuration of deploy/haproxy.cfg with this cluster's ports and servers. */
export function haproxyConfig(template: string, bind: string, servers: readonly { name: string; address: string }[]): string {
  const lines = template.split('\n')
  const begin = lines.findIndex((l) => l.includes('# servers: begin'))
  const end = lines.findIndex((l) => l.includes('# servers: end'))
  if (begin < 0 || end < begin) throw new Error('deploy/haproxy.cfg: the "# servers: begin/end" markers are missing')
  const indent = /^\s*/.exec(lines[begin])![0]
  const out = [...lines.slice(0, begin + 1), ...servers.map((s) => `${indent}server ${s.name} ${s.address}`), ...lines.slice(end)]
  return out.map((l) => (/^\s*bind\s/.test(l) ? `${/^\s*/.exec(l)![0]}bind ${bind}` : l)).join('\n')
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const log = opts.log ?? (() => {})
  const host = opts.host ?? '127.0.0.1'
  const dir = mkdtempSync(join(tmpdir(), 'tabswarm-cluster-'))
  const children: ChildProcess[] = []
  let redis: ChildProcess | null = null
  let haproxy: ChildProcess | null = null
  const stopAll = async () => {
    const all = [...children, ...(haproxy ? [haproxy] : []), ...(redis ? [redis] : [])]
    for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM')
    await Promise.race([Promise.all(all.map(exited)), new Promise((r) => setTimeout(r, 5000))])
    for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    let redisUrl = opts.redisUrl
    if (!redisUrl) {
      const port = await freePort(host)
      redis = spawn('redis-server', ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
      redis.once('error', (err) => log(`redis-server: ${err.message}`))
      redisUrl = `redis://${host}:${port}`
      await waitForPort(host, port, 10_000, 'redis-server')
      log(`redis-server on ${redisUrl}`)
    }
    const workers: ClusterWorker[] = []
    const spawnWorker = (index: number, port: number): ClusterWorker => {
      const proc = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'signaling-server/main.ts')], {
        cwd: repoRoot,
        env: { ...process.env, ...opts.env, PORT: String(port), HOST: host, REDIS_URL: redisUrl, DATA_DIR: join(dir, `worker-${index}`) },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(proc)
      let out = ''
      const keep = (d: Buffer) => { out = (out + d.toString()).slice(-64 * 1024) }
      proc.stdout?.on('data', keep)
      proc.stderr?.on('data', keep)
      return { index, port, url: `http://${host}:${port}`, proc, output: () => out }
    }
    for (let i = 0; i < opts.workers; i++) workers.push(spawnWorker(i, await freePort(host)))
    await Promise.all(workers.map((w) => waitHealthy(`worker-${w.index}`, `${w.url}/healthz`, 60_000, () => w.proc.exitCode === null)
      .catch((err: unknown) => { throw new Error(`${String(err)}\n${w.output().slice(-2000)}`) })))
    const port = opts.port || await freePort(host)
    const cfg = haproxyConfig(readFileSync(join(repoRoot, 'deploy/haproxy.cfg'), 'utf8'), `${host}:${port}`,
      workers.map((w) => ({ name: `s${w.index}`, address: `${host}:${w.port}` })))
    const cfgPath = join(dir, 'haproxy.cfg')
    writeFileSync(cfgPath, cfg)
    haproxy = spawn(HAPROXY, ['-db', '-f', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] })
    let haproxyErr = ''
    haproxy.stderr?.on('data', (d: Buffer) => { haproxyErr = (haproxyErr + d.toString()).slice(-8192) })
    const url = `http://${host}:${port}`
    await waitHealthy('haproxy', `${url}/healthz`, 15_000, () => haproxy?.exitCode === null).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${haproxyErr}`)
    })
    log(`haproxy on ${url} → ${workers.map((w) => w.port).join(', ')}`)
    const h = haproxy
    return {
      url,
      redisUrl,
      workers,
      async kill(i, signal = 'SIGKILL') {
        const w = workers[i]
        w.proc.kill(signal)
        await exited(w.proc)
      },
      async restart(i) {
        const old = workers[i]
        if (old.proc.exitCode === null && old.proc.signalCode === null) throw new Error(`worker ${i} is still running`)
        const w = spawnWorker(i, old.port)
        workers[i] = w
        await waitHealthy(`worker-${i}`, `${w.url}/healthz`, 60_000, () => w.proc.exitCode === null)
      },
      close: async () => {
        void h
        await stopAll()
      },
    }
  } catch (err) {
    await stopAll()
    throw err
  }
}

async function waitForPort(host: string, port: number, ms: number, what: string): Promise<void> {
  const { connect } = await import('node:net')
  const until = Date.now() + ms
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host)
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`cluster.${what}: port ${port} not open within ${ms} ms`)
}

async function main() {
  const program = new Command()
    .name('npm run cluster --')
    .description('N tabswarm server processes sharing one Redis, behind haproxy (deploy/haproxy.cfg)')
    .option('--workers <n>', 'server processes', '2')
    .option('--redis-url <url>', 'an existing Redis (default: start a redis-server for the cluster)')
    .option('--port <n>', 'the balancer\'s port', '8080')
    .option('--host <addr>', 'address the balancer and the processes listen on', '127.0.0.1')
    .parse()
  const o = program.opts<{ workers: string; redisUrl?: string; port: string; host: string }>()
  const workers = Number(o.workers)
  const port = Number(o.port)
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error('--workers: 1 to 64')
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error('--port: 0 to 65535')
  const cluster = await startCluster({ workers, redisUrl: o.redisUrl, port, host: o.host, log: (m) => console.log(`[cluster] ${m}`) })
  console.log([
    `tabswarm cluster: ${workers} processes behind haproxy. Open:`,
    `  ${cluster.url}/`,
    `  processes: ${cluster.workers.map((w) => `${w.url} (pid ${w.proc.pid})`).join(', ')}`,
    `  redis: ${cluster.redisUrl}`,
    '  kill a process (kill -9 PID) and its rooms move to the others; Ctrl-C stops everything',
  ].join('\n'))
  const stop = () => void cluster.close().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error(`[cluster] ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  })
}
