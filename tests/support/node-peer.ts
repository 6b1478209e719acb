import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'


/**
 * A headless Node volunteer in its own OS process (npm run peer), as a donor would start it.
 * Started as `node --import tsx` (one process) rather than the tsx CLI, which forks a child:
 * SIGKILL must really kill the volunteer for the churn test to mean anything.
 */
export interface NodePeer {
  proc: ChildProcess
  output(): string
  /** SIGKILL: an abrupt departure, no goodbye. */
  kill(): void
  /** SIGINT: graceful leave (hands the model to neighbours). */
  stop(): Promise<void>
}

export function startNodePeer(server: string, room: string, name: string, extra: string[] = [], opts: { quiet?: boolean } = {}): NodePeer {
  const quiet = opts.quiet === false ? [] : ['--quiet']
  const proc = spawn(process.execPath, ['--import', 'tsx', join(process.cwd(), 'client/node/peer-cli.ts'), '--server', server, '--room', room, '--name', name, ...quiet, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // The newest 256 KiB: a chatty peer (not --quiet) must not grow a test's memory without bound.
  let out = ''
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-256 * 1024) }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  return {
    proc,
    output: () => out,
    kill: () => void proc.kill('SIGKILL'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve()
        proc.once('exit', () => resolve())
        proc.kill('SIGINT')
        setTimeout(() => proc.kill('SIGKILL'), 5000)
      }),
  }
}
