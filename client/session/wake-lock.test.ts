import { describe, expect, it } from 'vitest'
import type { SessionSnapshot } from './types'
import { keepScreenOn, wantsScreenOn, type WakeLockEnv } from './wake-lock'

/** A page whose visibility the test sets, and a wake lock API that records what it holds. */
function fakes() {
  const doc = new EventTarget() as EventTarget & { visibilityState: DocumentVisibilityState }
  doc.visibilityState = 'visible'
  const held: Array<{ released: boolean }> = []
  let refuse = false
  const wakeLock: WakeLockEnv['wakeLock'] = {
    async request() {
      if (refuse || doc.visibilityState !== 'visible') throw new DOMException('not allowed', 'NotAllowedError')
      const t = new EventTarget() as EventTarget & { released: boolean; release(): Promise<void> }
      t.released = false
      t.release = async () => {
        if (t.released) return
        t.released = true
        t.dispatchEvent(new Event('release'))
      }
      held.push(t)
      return t as never
    },
  }
  let listener: ((s: SessionSnapshot) => void) | null = null
  const emit = (stage: SessionSnapshot['stage'], away: SessionSnapshot['away'] = null) => listener?.({ stage, away } as SessionSnapshot)
  const subscribe = (cb: (s: SessionSnapshot) => void) => {
    listener = cb
    return () => { listener = null }
  }
  const setVisible = (visible: boolean) => {
    doc.visibilityState = visible ? 'visible' : 'hidden'
    // As browsers do: a hidden page loses its lock.
    if (!visible) for (const h of held) void (h as unknown as { release(): Promise<void> }).release()
    doc.dispatchEvent(new Event('visibilitychange'))
  }
  const active = () => held.filter((h) => !h.released).length
  return { env: { doc: doc as unknown as WakeLockEnv['doc'], wakeLock }, emit, subscribe, setVisible, active, refuse: (v: boolean) => { refuse = v } }
}

const settle = () => new Promise((r) => setTimeout(r, 0))

describe('keepScreenOn', () => {
  it('wants the screen on while working and not stepped out', () => {
    expect(wantsScreenOn({ stage: 'training', away: null })).toBe(true)
    expect(wantsScreenOn({ stage: 'paused', away: null })).toBe(true) // waiting for the host's Start
    expect(wantsScreenOn({ stage: 'paused', away: 'paused' })).toBe(false)
    expect(wantsScreenOn({ stage: 'done', away: null })).toBe(false)
    expect(wantsScreenOn({ stage: 'error', away: null })).toBe(false)
  })

  it('holds the lock while training, releases it on pause, and takes it again when the page comes back', async () => {
    const f = fakes()
    const states: boolean[] = []
    const stop = keepScreenOn(f.subscribe, f.env, (h) => states.push(h))
    f.emit('training')
    await settle()
    expect(f.active()).toBe(1)
    f.emit('paused', 'paused')
    await settle()
    expect(f.active()).toBe(0)
    f.emit('training')
    await settle()
    expect(f.active()).toBe(1)
    // Hidden: the browser drops it; visible again: asked for again.
    f.setVisible(false)
    await settle()
    expect(f.active()).toBe(0)
    f.setVisible(true)
    await settle()
    expect(f.active()).toBe(1)
    stop()
    await settle()
    expect(f.active()).toBe(0)
    expect(states).toEqual([true, false, true, false, true, false])
  })

  it('does nothing without the API and survives a refusal', async () => {
    const f = fakes()
    expect(() => keepScreenOn(f.subscribe, { ...f.env, wakeLock: undefined })()).not.toThrow()
    f.refuse(true)
    keepScreenOn(f.subscribe, f.env)
    f.emit('training')
    await settle()
    expect(f.active()).toBe(0)
    f.refuse(false)
    f.setVisible(true)
    await settle()
    expect(f.active()).toBe(1)
  })
})
