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

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSec)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
