import { DeadlineError, type Envelope, type MessageFilter } from './transport'

/** How many consumed/buffered message ids are remembered for duplicate suppression. */
const SEEN_IDS_CAP = 4096
/**
 * Upper bound on buffered, unconsumed messages in all. One ring all-reduce over a full room
 * (256 peers) has its left neighbour send up to 2·255 chunks, all of which a slow peer may
 * still have to buffer: one sender may hold MAILBOX_SENDER_CAP_MESSAGES, a few senders twice that.
 */
export const MAILBOX_CAP_MESSAGES = 1024
/** Upper bound on buffered messages from one sender (see MAILBOX_CAP_MESSAGES). */
export const MAILBOX_SENDER_CAP_MESSAGES = 512
/**
 * Bytes charged per buffered message besides its payload (the envelope, a small meta: the wire
 * caps a header at 16 KiB, and the count caps bound how many there are).
 */
export const ENVELOPE_OVERHEAD_BYTES = 256
/** The room's default maxMessageBytes (shared/config.ts), for meshes that do not know the room's. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** Bytes buffered in all at least (a room with a small maxMessageBytes still gets this much). */
export const MAILBOX_MIN_TOTAL_BYTES = 256 * 1024 * 1024

/** Budgets of a Mailbox (see mailboxLimits). */
export interface MailboxLimits {
  /** Messages buffered in all / from one sender. */
  readonly messages: number
  readonly messagesPerSender: number
  /** Bytes buffered in all / from one sender (payload + ENVELOPE_OVERHEAD_BYTES per message). */
  readonly bytes: number
  readonly bytesPerSender: number
}

/**
 * The budgets for a room whose messages are at most `maxMessageBytes`: one sender may hold two
 * of the largest messages (a model a round ahead and the current one), everyone together twice
 * that or MAILBOX_MIN_TOTAL_BYTES, whichever is more. Honest messages are model-sized, far below
 * the cap (a 1M-parameter model is 4 MB against the 64 MiB default); 256 MiB in all at the
 * default, where a count-only cap allowed 512 × 64 MiB.
 */
export function mailboxLimits(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): MailboxLimits {
  const perSender = 2 * (maxMessageBytes + ENVELOPE_OVERHEAD_BYTES)
  return {
    messages: MAILBOX_CAP_MESSAGES,
    messagesPerSender: MAILBOX_SENDER_CAP_MESSAGES,
    bytes: Math.max(MAILBOX_MIN_TOTAL_BYTES, 2 * perSender),
    bytesPerSender: perSender,
  }
}

/** What a buffered message costs against the byte budgets. */
export function envelopeBytes(e: Envelope): number {
  return ENVELOPE_OVERHEAD_BYTES + (e.data?.byteLength ?? 0)
}

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

/** What one sender has buffered. */
interface Held {
  messages: number
  bytes: number
}

/**
 * Receive side shared by every Mesh implementation: buffering, duplicate and stale-epoch
 * dropping, and waiters with cancellable deadlines. Meshes only call `deliver`.
 *
 * Bounded per sender (docs/security.md): a sender over its own count or byte budget loses its own
 * oldest messages; when everything buffered together is over the total budget, the sender
 * holding the most loses its oldest. So a flood from one neighbour only ever evicts that
 * neighbour's messages: an honest one that holds less is never the one that pays.
 */
export class Mailbox {
  private buf: Envelope[] = []
  private readonly held = new Map<string, Held>()
  private bytesHeld = 0
  private waiters = new Set<Waiter>()
  private seen = new Set<string>()
  private seenOrder: string[] = []
  /** Messages from an epoch older than this are stale and dropped (docs/algorithms.md "Message tagging and staleness"). */
  minEpoch = 0
  dropped = { stale: 0, duplicate: 0, overflow: 0 }

  /** `limits` is read at every delivery (a room's maxMessageBytes may change). */
  constructor(private readonly limits: () => MailboxLimits = () => mailboxLimits()) {}

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
    this.count(e, 1)
    this.enforce(e.from)
    return true
  }

  /** Evicts until every budget holds: the sender's own first, then the largest holder's. */
  private enforce(sender: string): void {
    const lim = this.limits()
    const own = this.held.get(sender)
    while (own && own.messages > 0 && (own.messages > lim.messagesPerSender || own.bytes > lim.bytesPerSender)) this.evictOldestOf(sender)
    while (this.buf.length > lim.messages) this.evictOldestOf(this.largestHolder(sender, (h) => h.messages))
    while (this.bytesHeld > lim.bytes) this.evictOldestOf(this.largestHolder(sender, (h) => h.bytes))
  }

  /** The sender holding the most by `by`; `prefer` (the one delivering now) wins a tie. */
  private largestHolder(prefer: string, by: (h: Held) => number): string {
    let best = prefer
    let most = this.held.has(prefer) ? by(this.held.get(prefer)!) : -1
    for (const [from, h] of this.held) {
      if (by(h) > most) {
        best = from
        most = by(h)
      }
    }
    return best
  }

  private evictOldestOf(sender: string): void {
    const i = this.buf.findIndex((x) => x.from === sender)
    if (i < 0) return
    this.remove(i)
    this.dropped.overflow++
  }

  private remove(i: number): Envelope {
    const e = this.buf.splice(i, 1)[0]
    this.count(e, -1)
    return e
  }

  private count(e: Envelope, sign: 1 | -1): void {
    const b = envelopeBytes(e)
    this.bytesHeld += sign * b
    const h = this.held.get(e.from) ?? { messages: 0, bytes: 0 }
    h.messages += sign
    h.bytes += sign * b
    if (h.messages <= 0) this.held.delete(e.from)
    else this.held.set(e.from, h)
  }

  receive(filter: MessageFilter, signal: AbortSignal): Promise<Envelope> {
    const i = this.buf.findIndex((e) => matches(e, filter))
    if (i >= 0) return Promise.resolve(this.remove(i))
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
    return this.keepOnly((e) => !matches(e, filter)).length
  }

  /** Keeps the buffered messages `keep` approves; returns the others. */
  private keepOnly(keep: (e: Envelope) => boolean): Envelope[] {
    const kept: Envelope[] = []
    const gone: Envelope[] = []
    for (const e of this.buf) (keep(e) ? kept : gone).push(e)
    this.buf = kept
    for (const e of gone) this.count(e, -1)
    return gone
  }

  /**
   * Drop everything buffered from an epoch older than `epoch` and reject such messages from now on.
   * The dropped messages were never consumed, so they leave the duplicate set too: a sender that
   * re-sends the same (kind, round) under the new epoch (NeighborExchange does on a roster change)
   * must get through instead of being taken for a duplicate of what was just thrown away.
   */
  setMinEpoch(epoch: number): void {
    this.minEpoch = epoch
    for (const e of this.keepOnly((x) => x.epoch >= epoch)) this.seen.delete(idOf(e))
  }

  get size(): number {
    return this.buf.length
  }

  /** Bytes buffered (payloads plus ENVELOPE_OVERHEAD_BYTES each), in all or from `sender`. */
  bytes(sender?: string): number {
    return sender === undefined ? this.bytesHeld : this.held.get(sender)?.bytes ?? 0
  }

  /** Messages buffered from `sender`. */
  sizeFrom(sender: string): number {
    return this.held.get(sender)?.messages ?? 0
  }
}
