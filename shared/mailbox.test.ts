import { describe, expect, it } from 'vitest'
import { Mailbox } from './mailbox'
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
