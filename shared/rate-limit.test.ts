import { describe, expect, it } from 'vitest'
import { KeyedBuckets, TokenBucket } from './rate-limit'

describe('token bucket', () => {
  it('allows a burst, then the average rate, and refills over time', () => {
    const b = new TokenBucket(3, 2, 0)
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false])
    // 2 per second: one token after 500 ms, not before.
    expect(b.take(400)).toBe(false)
    expect(b.take(500)).toBe(true)
    expect(b.take(500)).toBe(false)
    // A long pause refills to the burst, no further.
    expect([b.take(60_000), b.take(60_000), b.take(60_000), b.take(60_000)]).toEqual([true, true, true, false])
  })
})

describe('keyed buckets', () => {
  it('one bucket per key, and a bounded number of keys (the oldest forgotten first)', () => {
    const k = new KeyedBuckets(2, 0, 3)
    expect([k.take('a', 0), k.take('a', 0), k.take('a', 0)]).toEqual([true, true, false])
    expect(k.take('b', 0)).toBe(true)
    k.take('c', 0)
    // A fourth key pushes out 'a', which starts afresh.
    k.take('d', 0)
    expect(k.take('a', 0)).toBe(true)
  })
})
