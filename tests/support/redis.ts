import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { freePort } from '../../tools/cluster'

/**
 * Debian's redis-server on an ephemeral loopback port, without persistence, for one test file.
 * `.ci/run` installs it; tests that need it fail with a clear message when it is missing.
 */
export interface RunningRedis {
  url: string
  stop(): Promise<void>
}

export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const failed = new Promise<never>((_, reject) => {
    proc.once('error', (err) => reject(new Error(`redis-server could not start (apt-get install redis-server): ${err.message}`)))
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
  })
  failed.catch(() => {})
  const until = Date.now() + 10_000
  for (;;) {
    const open = await Promise.race([failed, new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })])
    if (open) break
    if (Date.now() > until) throw new Error(`redis-server: port ${port} not open within 10 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve()
      proc.once('exit', () => resolve())
      proc.kill('SIGTERM')
    }),
  }
}
