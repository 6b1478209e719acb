import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const tsxCli = createRequire(import.meta.url).resolve('tsx/cli')

/** A headless Node volunteer in its own OS process (npm run peer), as a donor would start it. */
export interface NodePeer {
  proc: ChildProcess
  output(): string
  /** SIGKILL: an abrupt departure, no goodbye. */
  kill(): void
  /** SIGINT: graceful leave (hands the model to neighbours). */
  stop(): Promise<void>
}

export function startNodePeer(server: string, room: string, name: string, extra: string[] = []): NodePeer {
  const proc = spawn(process.execPath, [tsxCli, join(process.cwd(), 'client/node/peer-cli.ts'), '--server', server, '--room', room, '--name', name, '--quiet', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout?.on('data', (d) => (out += d))
  proc.stderr?.on('data', (d) => (out += d))
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
