import { DeadlineError, type Envelope, type MessageFilter } from './transport'

/** How many consumed/buffered message ids are remembered for duplicate suppression. */
const SEEN_IDS_CAP = 4096
/** Upper bound on buffered, unconsumed messages; oldest are dropped first (bounded memory). */
export const MAILBOX_CAP_MESSAGES = 512

export function matches(e: Envelope, f: MessageFilter): boolean {
  if (f.kind !== undefined) {
    if (typeof f.kind === 'string' ? e.kind !== f.kind : !f.kind.includes(e.kind)) return false
  }
  if (f.round !== undefined && e.round !== f.round) return false
  if (f.from !== undefined && e.from !== f.from) return false
  if (f.where && !f.where(e)) return false
  return true
}

/** Duplicate-suppression key: one message per (sender, kind, round). */
const idOf = (e: Envelope) => `${e.from}\u0000${e.kind}\u0000${e.round}`

interface Waiter {
  filter: MessageFilter
  resolve: (e: Envelope) => void
}

/**
 * Receive side shared by every Mesh implementation: buffering, duplicate and stale-epoch
 * dropping, and waiters with cancellable deadlines. Meshes only call `deliver`.
 */
export class Mailbox {
  private buf: Envelope[] = []
  private waiters = new Set<Waiter>()
  private seen = new Set<string>()
  private seenOrder: string[] = []
  /** Messages from an epoch older than this are stale and dropped (docs/algorithms.md "Message tagging and staleness"). */
  minEpoch = 0
  dropped = { stale: 0, duplicate: 0, overflow: 0 }

  deliver(e: Envelope): boolean {
    if (e.epoch < this.minEpoch) {
      this.dropped.stale++
      return false
    }
    const id = idOf(e)
    if (this.seen.has(id)) {
      this.dropped.duplicate++
      return false
    }
    this.seen.add(id)
    this.seenOrder.push(id)
    if (this.seenOrder.length > SEEN_IDS_CAP) this.seen.delete(this.seenOrder.shift()!)
    for (const w of this.waiters) {
      if (matches(e, w.filter)) {
        this.waiters.delete(w)
        w.resolve(e)
        return true
      }
    }
    this.buf.push(e)
    if (this.buf.length > MAILBOX_CAP_MESSAGES) {
      this.buf.shift()
      this.dropped.overflow++
    }
    return true
  }

  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope> {
    const i = this.buf.findIndex((e) => matches(e, filter))
    if (i >= 0) return Promise.resolve(this.buf.splice(i, 1)[0])
    if (signal.aborted) return Promise.reject(signal.reason ?? new DeadlineError('receive'))
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        filter,
        resolve: (e) => {
          signal.removeEventListener('abort', onAbort)
          resolve(e)
        },
      }
      const onAbort = () => {
        this.waiters.delete(w)
        reject(signal.reason ?? new DeadlineError('receive'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.add(w)
    })
  }

  discard(filter: MessageFilter): number {
    const before = this.buf.length
    this.buf = this.buf.filter((e) => !matches(e, filter))
    return before - this.buf.length
  }

  /**
   * Drop everything buffered from an epoch older than `epoch` and reject such messages from now on.
   * The dropped messages were never consumed, so they leave the duplicate set too: a sender that
   * re-sends the same (kind, round) under the new epoch (NeighborExchange does on a roster change)
   * must get through instead of being taken for a duplicate of what was just thrown away.
   */
  setMinEpoch(epoch: number): void {
    this.minEpoch = epoch
    const keep: Envelope[] = []
    for (const e of this.buf) {
      if (e.epoch >= epoch) keep.push(e)
      else this.seen.delete(idOf(e))
    }
    this.buf = keep
  }

  get size(): number {
    return this.buf.length
  }
}
