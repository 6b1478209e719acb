import { readdirSync, readFileSync } from 'node:fs'

/** This process's CPU time so far, in ms: user + system, every thread (main, workers, V8 and WebRTC helpers). */
export const processCpuMs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/**
 * Per-thread CPU time of a process from /proc (Linux only; null elsewhere or once it exited), in
 * ms by thread id. Used to split a peer's CPU per update into its compute thread, its main
 * (session/mesh) thread and the rest (V8 GC/compiler helpers, WebRTC threads): process totals
 * alone cannot say whether a swarm costs more because the gradient got slower or because
 * something beside it ran.
 */
export function threadCpuMs(pid: number): Map<number, number> | null {
  const tick = 1000 / 100 // USER_HZ is 100 on every Linux we run on
  try {
    const out = new Map<number, number>()
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      // Fields after the ")" that closes comm (comm may hold spaces): utime is the 12th, stime the 13th.
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) * tick)
    }
    return out
  } catch {
    return null
  }
}

export type ThreadSplit = { mainMs: number; busiestOtherMs: number; restMs: number }

/**
 * Splits the CPU time between two readings: the main thread (tid = pid), the busiest other
 * thread (a peer's compute worker when it has one) and everything else. Threads that started
 * between the readings count from zero.
 */
export function splitThreads(pid: number, a: Map<number, number> | null, b: Map<number, number> | null): ThreadSplit | undefined {
  if (!a || !b) return undefined
  let mainMs = 0
  const others: number[] = []
  for (const [tid, ms] of b) {
    const d = ms - (a.get(tid) ?? 0)
    if (tid === pid) mainMs = d
    else others.push(d)
  }
  others.sort((x, y) => y - x)
  const busiestOtherMs = others[0] ?? 0
  return { mainMs, busiestOtherMs, restMs: others.slice(1).reduce((s, x) => s + x, 0) }
}
