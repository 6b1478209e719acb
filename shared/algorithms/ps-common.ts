import { z } from 'zod'
import { allFinite, concat } from '../math/vector'
import { scopedDeadline, type Envelope, type MeshMessage, type PeerId, type ScopedDeadline } from '../transport'
import { rosterDeadline } from './common'
import { PS_KIND, psKind } from './message-kinds'
import type { AlgorithmContext } from './types'

/**
 * Parameter-server plumbing shared by asgd.ts and od-sgd.ts (docs/algorithms.md "Parameter-server algorithms"): message kinds,
 * background serve loops, deadlines that follow the PS role, and the docs/algorithms.md "Parameter-server churn" hand-over of the
 * server state (W, v) from a leaving PS to its successor.
 */

export { PS_KIND }

export const pushMetaSchema = z.object({ samples: z.number().int().min(1).max(1 << 24) })

/** The peer the signaling server elects when `ps` leaves (MemoryNetwork / rooms: first remaining). */
export function successorOf(peers: readonly PeerId[], ps: PeerId): PeerId | null {
  return peers.find((p) => p !== ps) ?? null
}

/** Wakes every waiter on notify(); the building block for "wait until state changes or deadline". */
export class Notifier {
  private waiters = new Set<() => void>()
  notify(): void {
    const w = [...this.waiters]
    this.waiters.clear()
    for (const f of w) f()
  }
  /** Resolves true on the next notify(), false when `signal` aborts. */
  next(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false)
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', onAbort)
        resolve(true)
      }
      const onAbort = () => {
        this.waiters.delete(wake)
        resolve(false)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.add(wake)
    })
  }
  /** Resolves true once `cond()` holds, false when `signal` aborts first. */
  async until(cond: () => boolean, signal: AbortSignal): Promise<boolean> {
    while (!cond()) if (!(await this.next(signal))) return cond()
    return true
  }
}

/** Runs `loop(env)` for every message of `kind` until `signal` aborts; a handler's error never escapes. */
export async function serveKind(
  ctx: AlgorithmContext, kind: string | readonly string[], signal: AbortSignal, handle: (e: Envelope) => Promise<void> | void,
): Promise<void> {
  while (!signal.aborted) {
    let e: Envelope
    try {
      e = await ctx.mesh.receive({ kind }, signal)
    } catch {
      return
    }
    try {
      await handle(e)
    } catch (err) {
      ctx.log('ps/handler-error', { kind: e.kind, from: e.from, error: String(err) })
    }
  }
}

/** Parent-linked AbortController, so dispose() and the session signal both stop background loops. */
export function childController(parent: AbortSignal): AbortController {
  const ctl = new AbortController()
  if (parent.aborted) ctl.abort(parent.reason)
  else parent.addEventListener('abort', () => ctl.abort(parent.reason), { once: true })
  return ctl
}

/** Runs `fn` under a named deadline whose timer is released as soon as `fn` settles. */
export async function withDeadline<T>(name: string, ms: number, parent: AbortSignal, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
  const dl = scopedDeadline(name, ms, parent)
  try {
    return await fn(dl.signal)
  } finally {
    dl.done()
  }
}

/** A named deadline that also aborts when the roster changes (`ps` leaving or losing the role included). */
export function whilePs(ctx: AlgorithmContext, ps: PeerId, name: string, ms: number, parent: AbortSignal): ScopedDeadline {
  // Any roster change aborts: in-flight messages of the old epoch are dropped as stale (docs/algorithms.md "Message tagging and staleness").
  return rosterDeadline(ctx, name, ms, parent, (m, changed) => changed
    ? new Error(m.roles.ps !== ps || !m.peers.includes(ps) ? `PS ${ps} gone` : `roster changed (epoch ${m.epoch})`)
    : undefined)
}

/**
 * Sends the server state to `order` (successor first) and waits for the successor's ack, so the
 * hand-over is consumed before this peer leaves: after the roster changes, messages of the old
 * epoch would be dropped as stale (docs/algorithms.md "Message tagging and staleness").
 */
export async function sendHandover(
  ctx: AlgorithmContext, algo: string, order: readonly PeerId[], msg: MeshMessage, parent: AbortSignal,
): Promise<boolean> {
  const succ = order[0]
  if (!succ) return false
  return withDeadline(`${algo}/handover`, ctx.config.stepDeadlineMs, parent, async (sig) => {
    await Promise.allSettled(order.map((p) => ctx.mesh.send(p, msg, sig)))
    try {
      await ctx.mesh.receive({ kind: psKind(algo, 'handoverAck'), round: msg.round, from: succ }, sig)
      return true
    } catch {
      ctx.log(`${algo}/handover-unacked`, { to: succ })
      return false
    }
  })
}

export async function ackHandover(ctx: AlgorithmContext, kind: string, e: Envelope, parent: AbortSignal): Promise<void> {
  await withDeadline('handover-ack', ctx.config.stepDeadlineMs, parent, (sig) =>
    ctx.mesh.send(e.from, { kind, round: e.round }, sig)).catch(() => undefined)
}

/**
 * docs/algorithms.md "Parameter-server churn", leaving side: sends the server state W ‖ v as `<algo>/handover` to every other peer,
 * the successor (whom the signaling server elects) first, and waits for the successor's ack.
 * `meta` travels with the state (asgd: version, od-sgd: round t) and is logged.
 */
export async function handOverServerState(
  ctx: AlgorithmContext, algo: string, state: { W: Float32Array; v: Float32Array }, round: number,
  meta: Record<string, number>, parent: AbortSignal,
): Promise<boolean> {
  const { mesh } = ctx
  const m = mesh.membership()
  const succ = successorOf(m.peers, mesh.self)
  const others = m.peers.filter((p) => p !== mesh.self)
  const order = succ ? [succ, ...others.filter((p) => p !== succ)] : others
  const data = concat([state.W, state.v])
  ctx.log(`${algo}/handover`, { to: succ, ...meta })
  return sendHandover(ctx, algo, order, { kind: psKind(algo, 'handover'), round, data, meta }, parent)
}

/**
 * docs/algorithms.md "Parameter-server churn", receiving side: validates a `<algo>/handover` envelope (2·d finite values), acks it to the
 * sender and returns the state split into W and v; null (and no ack) when it is malformed.
 * What to do with the state (adopt now or keep for later) is the algorithm's decision.
 */
export async function acceptHandover(
  ctx: AlgorithmContext, algo: string, e: Envelope, d: number, logMeta: Record<string, unknown>, parent: AbortSignal,
): Promise<{ W: Float32Array; v: Float32Array } | null> {
  if (!e.data || e.data.length !== 2 * d || !allFinite(e.data)) return null
  const state = { W: e.data.slice(0, d), v: e.data.slice(d) }
  ctx.log(`${algo}/handover-received`, { from: e.from, ...logMeta })
  await ackHandover(ctx, psKind(algo, 'handoverAck'), e, parent)
  return state
}
