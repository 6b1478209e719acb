import { describe, expect, it } from 'vitest'
import { chooseSlot, loadBrowserIdentity, parseSlot, REMEMBERED_SLOT_WAIT_MS, SLOT_CAP } from './browser-identity'

/** A lock table: `held` slots are taken by other tabs; records the order of attempts and waits. */
function locks(held: number[]) {
  const tried: number[] = []
  const waits: number[] = []
  const taken = new Set(held)
  const tryLock = async (slot: number, waitMs = 0) => {
    tried.push(slot)
    waits.push(waitMs)
    if (taken.has(slot)) return false
    taken.add(slot)
    return true
  }
  return { tried, waits, tryLock }
}

describe('browser identity slot choice', () => {
  it('a reload gets its remembered slot back, waiting a moment for the old page to let it go', async () => {
    const l = locks([0, 1])
    expect(await chooseSlot(5, l.tryLock)).toBe(5)
    expect(l.tried).toEqual([5])
    expect(l.waits).toEqual([REMEMBERED_SLOT_WAIT_MS])
    // The old page's lock goes away during the wait: the reload still gets its slot (its id, its credit).
    let released = false
    setTimeout(() => (released = true), 20)
    const slot = await chooseSlot(3, async (s, waitMs = 0) => {
      if (s !== 3) return true
      await new Promise((r) => setTimeout(r, Math.min(waitMs, 50)))
      return released
    })
    expect(slot).toBe(3)
  })

  it('a duplicated tab (remembered slot held by the original) takes the lowest free slot, and takes one lock only', async () => {
    const l = locks([0, 2])
    expect(await chooseSlot(2, l.tryLock)).toBe(1)
    expect(l.tried).toEqual([2, 0, 1])
    // Only the remembered slot is waited for; the others are taken only if free now.
    expect(l.waits).toEqual([REMEMBERED_SLOT_WAIT_MS, 0, 0])
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
