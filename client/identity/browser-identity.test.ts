import { describe, expect, it } from 'vitest'
import { chooseSlot, loadBrowserIdentity, parseSlot, SLOT_CAP } from './browser-identity'

/** A lock table: `held` slots are taken by other tabs; records the order of attempts. */
function locks(held: number[]) {
  const tried: number[] = []
  const taken = new Set(held)
  const tryLock = async (slot: number) => {
    tried.push(slot)
    if (taken.has(slot)) return false
    taken.add(slot)
    return true
  }
  return { tried, tryLock }
}

describe('browser identity slot choice', () => {
  it('a reload gets its remembered slot back', async () => {
    const l = locks([0, 1])
    expect(await chooseSlot(5, l.tryLock)).toBe(5)
    expect(l.tried).toEqual([5])
  })

  it('a duplicated tab (remembered slot held by the original) takes the lowest free slot, and takes one lock only', async () => {
    const l = locks([0, 2])
    expect(await chooseSlot(2, l.tryLock)).toBe(1)
    expect(l.tried).toEqual([2, 0, 1])
  })

  it('a new tab takes the lowest free slot; an out-of-range memory is ignored', async () => {
    expect(await chooseSlot(null, locks([]).tryLock)).toBe(0)
    const l = locks([0])
    expect(await chooseSlot(SLOT_CAP, l.tryLock)).toBe(1)
    expect(l.tried).toEqual([0, 1])
    expect(await chooseSlot(-1, locks([]).tryLock)).toBe(0)
    expect(await chooseSlot(1.5, locks([]).tryLock)).toBe(0)
  })

  it('all slots taken: null, each slot tried once', async () => {
    const l = locks([...Array(SLOT_CAP).keys()])
    expect(await chooseSlot(3, l.tryLock)).toBeNull()
    expect(l.tried).toHaveLength(SLOT_CAP)
    expect(new Set(l.tried).size).toBe(SLOT_CAP)
  })

  it('parses only plausible remembered slots', () => {
    expect(parseSlot('7')).toBe(7)
    for (const s of [null, '', '-1', '1.5', 'abc', '12345', ' 3']) expect(parseSlot(s)).toBeNull()
  })

  it('without IndexedDB or Web Locks (Node here) it is null, not an error', async () => {
    expect(await loadBrowserIdentity()).toBeNull()
  })
})
