/**
 * A token bucket: `burst` events at once, then `perSec` on average. Used to bound every socket
 * event type (signaling-server/handlers.ts), so one participant's flood costs the server a
 * counter per event, not the event's work.
 */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor(readonly burst: number, readonly perSec: number, now: number) {
    this.tokens = burst
    this.last = now
  }

  /** Takes `cost` tokens (one event, or a message's bytes) if there are that many. */
  take(now: number, cost = 1): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSec)
    this.last = now
    if (this.tokens < cost) return false
    this.tokens -= cost
    return true
  }
}

/**
 * One token bucket per key (a client address), bounded in entries: the oldest-seen key is
 * forgotten first, so a flood of addresses costs memory for at most `maxKeys` buckets.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>()

  constructor(readonly burst: number, readonly perSec: number, readonly maxKeys = 10_000) {}

  take(key: string, now: number, cost = 1): boolean {
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string)
      b = new TokenBucket(this.burst, this.perSec, now)
      this.buckets.set(key, b)
    }
    return b.take(now, cost)
  }
}
