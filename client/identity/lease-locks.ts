/**
 * Identity-slot locks for pages without Web Locks. navigator.locks, like crypto.subtle, exists only
 * in secure contexts, so a plain-http LAN page needs another way to keep two tabs of one browser
 * off one slot (client/identity/browser-identity.ts).
 *
 * A slot's lease is a record in IndexedDB naming the page that holds it, taken by compare-and-set
 * inside one readwrite transaction (IndexedDB runs overlapping readwrite transactions one at a time,
 * so two tabs cannot both take a free slot). A lease is never renewed and has no expiry, because
 * background tabs' timers are throttled to minutes: instead a tab that finds a slot leased asks the
 * holder over a BroadcastChannel, and takes the slot over only if no live page answers within the
 * wait (the holder was reloaded or closed). A page gives its lease back on pagehide when it can.
 *
 * Known gap: a frozen tab (a phone's or Chrome's memory saver) cannot answer, so another tab may
 * take its slot; when it wakes it joins under the same id and the two replace each other on the
 * server until one reloads.
 */

const CHANNEL = 'tabswarm-identity-leases'
/** How long a slot's holder has to answer before it counts as gone, unless the caller waits longer. */
export const PROBE_MS = 1_000

type LeaseMessage = { t: 'who'; slot: number } | { t: 'held'; slot: number }

function isLeaseMessage(v: unknown): v is LeaseMessage {
  if (typeof v !== 'object' || v === null) return false
  const m = v as Record<string, unknown>
  return (m.t === 'who' || m.t === 'held') && typeof m.slot === 'number' && Number.isInteger(m.slot)
}

function pageToken(): string {
  let hex = ''
  for (const b of globalThis.crypto.getRandomValues(new Uint8Array(16))) hex += b.toString(16).padStart(2, '0')
  return hex
}

export interface LeaseLocks {
  tryLock(slot: number, waitMs?: number): Promise<boolean>
}

/**
 * Lease-based tryLock for chooseSlot. `db` and `store` are the identity database (kept open for the
 * page's life); leases live under the keys 'lease-<slot>'. Null where BroadcastChannel is missing.
 */
export function leaseLocks(db: IDBDatabase, store: string): LeaseLocks | null {
  if (typeof BroadcastChannel === 'undefined') return null
  const page = pageToken()
  const channel = new BroadcastChannel(CHANNEL)
  let held: number | null = null
  // The slot being compare-and-set now counts as held: a probe landing between the write and
  // `held` being set must not find it free.
  let pending: number | null = null
  const waiters = new Set<(slot: number) => void>()

  channel.onmessage = (e: MessageEvent) => {
    const m: unknown = e.data
    if (!isLeaseMessage(m)) return
    if (m.t === 'who' && (m.slot === held || m.slot === pending)) channel.postMessage({ t: 'held', slot: m.slot } satisfies LeaseMessage)
    else if (m.t === 'held') for (const w of waiters) w(m.slot)
  }

  globalThis.addEventListener?.('pagehide', (e: PageTransitionEvent) => {
    // A page kept in the back/forward cache may come back with its identity: keep its lease.
    if (held === null || e.persisted) return
    try {
      const s = db.transaction(store, 'readwrite').objectStore(store)
      const key = `lease-${held}`
      const r = s.get(key)
      r.onsuccess = () => {
        if ((r.result as { page?: unknown } | undefined)?.page === page) s.delete(key)
      }
    } catch {
      // Best effort: the next page waits PROBE_MS for an answer instead.
    }
  })

  /** Takes the lease if it is free or still held by `expected`; otherwise resolves the holder's token. */
  function compareAndSet(slot: number, expected: string | null): Promise<{ taken: true } | { taken: false; holder: string }> {
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, 'readwrite')
      const s = tx.objectStore(store)
      const key = `lease-${slot}`
      let outcome: { taken: true } | { taken: false; holder: string } = { taken: true }
      const r = s.get(key)
      r.onsuccess = () => {
        const holder = (r.result as { page?: unknown } | undefined)?.page
        if (typeof holder === 'string' && holder !== expected && holder !== page) outcome = { taken: false, holder }
        else s.put({ page }, key)
      }
      tx.oncomplete = () => resolve(outcome)
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB lease failed'))
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB lease aborted'))
    })
  }

  /** True if a live page answers for `slot` within `waitMs`. */
  function probe(slot: number, waitMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (alive: boolean) => {
        clearTimeout(timer)
        waiters.delete(onHeld)
        resolve(alive)
      }
      const onHeld = (s: number) => {
        if (s === slot) done(true)
      }
      const timer = setTimeout(() => done(false), waitMs)
      waiters.add(onHeld)
      channel.postMessage({ t: 'who', slot } satisfies LeaseMessage)
    })
  }

  return {
    async tryLock(slot, waitMs = 0) {
      if (held !== null) return held === slot
      pending = slot
      try {
        const first = await compareAndSet(slot, null)
        if (!first.taken) {
          if (await probe(slot, Math.max(waitMs, PROBE_MS))) return false
          if (!(await compareAndSet(slot, first.holder)).taken) return false
        }
        held = slot
        return true
      } finally {
        pending = null
      }
    },
  }
}
