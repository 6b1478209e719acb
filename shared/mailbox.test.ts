import { describe, expect, it } from 'vitest'
import { ENVELOPE_OVERHEAD_BYTES, MAILBOX_CAP_MESSAGES, MAILBOX_SENDER_CAP_MESSAGES, Mailbox, mailboxLimits } from './mailbox'
import { deadline, type Envelope } from './transport'

const env = (over: Partial<Envelope> = {}): Envelope => ({ kind: 'x', round: 3, from: 'a', epoch: 1, clock: 0, ...over })

describe('Mailbox: stale epochs and duplicates', () => {
  it('a message dropped unconsumed by an epoch change can be re-sent under the new epoch', async () => {
    const mb = new Mailbox()
    expect(mb.deliver(env())).toBe(true)
    mb.setMinEpoch(2)
    expect(mb.size).toBe(0)
    expect(mb.deliver(env({ epoch: 1 }))).toBe(false) // the old copy, still in flight: stale
    expect(mb.dropped.stale).toBe(1)
    expect(mb.deliver(env({ epoch: 2 }))).toBe(true) // the re-send is not a duplicate
    const got = await mb.receive({ kind: 'x', from: 'a' }, deadline('t', 100))
    expect(got.epoch).toBe(2)
  })

  it('a message already consumed stays a duplicate across the epoch change (no double counting)', async () => {
    const mb = new Mailbox()
    mb.deliver(env())
    await mb.receive({ kind: 'x' }, deadline('t', 100))
    mb.setMinEpoch(2)
    expect(mb.deliver(env({ epoch: 2 }))).toBe(false)
    expect(mb.dropped.duplicate).toBe(1)
  })
})

describe('Mailbox: per-sender budgets (docs/security.md)', () => {
  const small = { messages: 64, messagesPerSender: 32, bytes: 64 * 1024, bytesPerSender: 16 * 1024 }

  it('512+ junk messages from one sender never evict another sender\'s message', async () => {
    const mb = new Mailbox()
    mb.deliver(env({ from: 'honest', kind: 'dpsgd/params', round: 7 }))
    for (let i = 0; i < 3 * MAILBOX_CAP_MESSAGES; i++) mb.deliver(env({ from: 'flood', kind: 'dpsgd/params', round: 1000 + i }))
    expect(mb.sizeFrom('flood')).toBeLessThanOrEqual(MAILBOX_SENDER_CAP_MESSAGES)
    expect(mb.size).toBeLessThanOrEqual(MAILBOX_CAP_MESSAGES)
    expect(mb.dropped.overflow).toBeGreaterThan(0)
    const got = await mb.receive({ kind: 'dpsgd/params', from: 'honest' }, deadline('t', 100))
    expect(got.round).toBe(7)
  })

  it('a sender over its own budget loses its own oldest messages, the newest stay', async () => {
    const mb = new Mailbox(() => small)
    mb.deliver(env({ from: 'h', round: 0 }))
    for (let i = 0; i < 100; i++) mb.deliver(env({ from: 'x', round: i + 1 }))
    expect(mb.sizeFrom('x')).toBe(small.messagesPerSender)
    expect(mb.sizeFrom('h')).toBe(1)
    // The flooder's newest are kept (a real message after a burst of junk still gets through).
    const last = await mb.receive({ from: 'x', round: 100 }, deadline('t', 100))
    expect(last.round).toBe(100)
    await expect(mb.receive({ from: 'x', round: 1 }, deadline('t', 10))).rejects.toThrow()
  })

  it('byte budgets hold per sender and in all, and several flooders only evict each other', async () => {
    const mb = new Mailbox(() => small)
    const payload = (n: number) => new Float32Array(n)
    mb.deliver(env({ from: 'h', round: 0, data: payload(1024) })) // 4 KiB + overhead
    for (let i = 0; i < 200; i++) {
      for (const f of ['f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8']) {
        mb.deliver(env({ from: f, round: i + 1, data: payload(1000) }))
        expect(mb.bytes(f)).toBeLessThanOrEqual(small.bytesPerSender)
        expect(mb.bytes()).toBeLessThanOrEqual(small.bytes)
        expect(mb.size).toBeLessThanOrEqual(small.messages)
      }
    }
    // 8 flooders at their own byte budget are over the total: the total held by evicting flooders.
    expect(8 * small.bytesPerSender).toBeGreaterThan(small.bytes)
    const got = await mb.receive({ from: 'h' }, deadline('t', 100))
    expect(got.data!.length).toBe(1024)
  })

  it('one message over the sender\'s byte budget is dropped, not kept at the others\' expense', () => {
    const mb = new Mailbox(() => small)
    mb.deliver(env({ from: 'h', round: 0 }))
    expect(mb.deliver(env({ from: 'x', round: 1, data: new Float32Array(8192) }))).toBe(true)
    expect(mb.sizeFrom('x')).toBe(0)
    expect(mb.sizeFrom('h')).toBe(1)
    expect(mb.dropped.overflow).toBe(1)
  })

  it('accounting follows receive, discard and epoch changes back to zero', async () => {
    const mb = new Mailbox(() => small)
    for (let i = 0; i < 10; i++) mb.deliver(env({ from: i % 2 ? 'a' : 'b', round: i, data: new Float32Array(10) }))
    await mb.receive({ from: 'a' }, deadline('t', 100))
    expect(mb.discard({ from: 'b' })).toBe(5)
    expect(mb.sizeFrom('b')).toBe(0)
    mb.setMinEpoch(5)
    expect(mb.size).toBe(0)
    expect(mb.bytes()).toBe(0)
    expect(mb.bytes('a')).toBe(0)
  })

  it('mailboxLimits: a sender may hold two of the largest messages; everything together twice that, at least 256 MiB', () => {
    const l = mailboxLimits(64 * 1024 * 1024)
    expect(l.bytesPerSender).toBe(2 * (64 * 1024 * 1024 + ENVELOPE_OVERHEAD_BYTES))
    expect(l.bytes).toBe(2 * l.bytesPerSender)
    expect(mailboxLimits(1024).bytes).toBe(256 * 1024 * 1024)
  })
})
