/**
 * The browser tab's identity (shared/identity.ts), kept across reloads.
 *
 * Keys are made non-extractable and stored as CryptoKey objects (structured clone) in IndexedDB:
 * database 'tabswarm-identity', store 'keys', keyed by a slot number. The tabs of one browser
 * profile share IndexedDB, but each must have its own identity (two tabs with one id would replace
 * each other on the server), so a tab holds the Web Lock 'tabswarm-identity-<slot>' for its whole
 * lifetime on the first slot it can lock, trying first the slot remembered in sessionStorage: a
 * reload of the same tab gets its identity back (the browser drops the lock when the page unloads).
 * A duplicated tab copies sessionStorage, finds that slot locked by the original and takes another.
 *
 * An insecure context (a plain-http LAN page such as http://192.168.x.y:8080) has neither
 * crypto.subtle nor Web Locks. There the key is made and used by pure-JS P-256
 * (shared/identity-noble.ts, loaded only then) and kept as its raw 32 bytes under 'raw-<slot>' in
 * the same store, since a CryptoKey cannot exist without subtle; slots are held by IndexedDB leases
 * (./lease-locks.ts) instead of Web Locks. docs/security.md says what the raw key costs.
 *
 * Null, never a throw, when an identity cannot be had: no IndexedDB, no crypto.getRandomValues,
 * neither Web Locks nor BroadcastChannel, all slots taken, or a storage error (quota, private
 * mode). The tab then joins without a proof and its socket id is its identity, as before.
 */
import { generateIdentityKeys, identityFromKeys, type Identity } from '../../shared/identity'
import { leaseLocks } from './lease-locks'

export const SLOT_CAP = 64
const DB_NAME = 'tabswarm-identity'
const STORE = 'keys'
const SESSION_KEY = 'tabswarm:identity-slot'
const LOCK_PREFIX = 'tabswarm-identity-'
/** An IndexedDB open blocked by another tab must not hold up the join for long. */
const TIMEOUT_MS = 10_000
/**
 * How long a tab waits for its remembered slot: on a reload the old page's lock is released as
 * that page goes away, which may reach the browser's lock manager after the new page asks. Not
 * waiting would give a reload another slot, another id, and so lose its credit; a duplicated tab
 * (whose original keeps the slot) pays this once before taking a free one.
 */
export const REMEMBERED_SLOT_WAIT_MS = 1_500

/**
 * The slot to use: the remembered one if it can be locked, else the lowest one that can; null if
 * none of the `cap` slots can. Slots are tried one at a time, so at most one lock is taken.
 */
export async function chooseSlot(
  remembered: number | null, tryLock: (slot: number, waitMs?: number) => Promise<boolean>, cap = SLOT_CAP,
): Promise<number | null> {
  const first = remembered !== null && Number.isInteger(remembered) && remembered >= 0 && remembered < cap ? remembered : null
  if (first !== null && (await tryLock(first, REMEMBERED_SLOT_WAIT_MS))) return first
  for (let slot = 0; slot < cap; slot++) if (slot !== first && (await tryLock(slot))) return slot
  return null
}

/** Parses the remembered slot; null for anything but a small non-negative integer. */
export function parseSlot(text: string | null): number | null {
  if (text === null || !/^\d{1,3}$/.test(text)) return null
  return Number(text)
}

/**
 * Takes the lock if it is free (or frees up within `waitMs`) and holds it until the page goes
 * away; false when it stays taken.
 */
function holdLock(locks: LockManager, name: string, waitMs = 0): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const opts: LockOptions = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true }
    locks
      .request(name, opts, (lock) => {
        if (!lock) {
          resolve(false)
          return undefined
        }
        resolve(true)
        return new Promise<never>(() => {})
      })
      .catch((e: unknown) => {
        // The wait ran out: the slot is someone else's.
        if (e instanceof DOMException && (e.name === 'TimeoutError' || e.name === 'AbortError')) resolve(false)
        else reject(e)
      })
  })
}

function sessionGet(): string | null {
  try {
    return sessionStorage.getItem(SESSION_KEY)
  } catch {
    return null
  }
}

function sessionSet(slot: number): void {
  try {
    sessionStorage.setItem(SESSION_KEY, String(slot))
  } catch {
    // Without sessionStorage a reload may get another slot: a new id, nothing worse.
  }
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'))
  })
}

function openDb(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB_NAME, 1)
  r.onupgradeneeded = () => {
    if (!r.result.objectStoreNames.contains(STORE)) r.result.createObjectStore(STORE)
  }
  return request(r).then((db) => {
    // A later version opened in another tab must not be blocked by this one.
    db.onversionchange = () => db.close()
    return db
  })
}

function isUsablePair(v: unknown): v is CryptoKeyPair {
  if (typeof v !== 'object' || v === null) return false
  const { publicKey, privateKey } = v as Record<string, unknown>
  const ok = (k: unknown, usage: KeyUsage) =>
    k instanceof CryptoKey && k.algorithm.name === 'ECDSA' && (k.algorithm as EcKeyAlgorithm).namedCurve === 'P-256' && k.usages.includes(usage)
  return ok(publicKey, 'verify') && ok(privateKey, 'sign')
}

/** The key pair stored in `slot`, made and stored there first if missing or unusable. */
async function keysForSlot(slot: number): Promise<CryptoKeyPair> {
  const db = await openDb()
  try {
    const stored: unknown = await request(db.transaction(STORE, 'readonly').objectStore(STORE).get(slot))
    if (isUsablePair(stored)) return stored
    const fresh = await generateIdentityKeys(false)
    const pair = { publicKey: fresh.publicKey, privateKey: fresh.privateKey }
    const tx = db.transaction(STORE, 'readwrite')
    tx.objectStore(STORE).put(pair, slot)
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'))
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write aborted'))
    })
    return pair
  } finally {
    db.close()
  }
}

/** The raw private key stored in `slot` for the insecure-context path, made and stored there first if missing. */
async function secretForSlot(db: IDBDatabase, slot: number): Promise<Uint8Array> {
  const { isNobleSecretKey, newNobleSecretKey } = await import('../../shared/identity-noble')
  const key = `raw-${slot}`
  const stored: unknown = await request(db.transaction(STORE, 'readonly').objectStore(STORE).get(key))
  if (isNobleSecretKey(stored)) return stored
  const fresh = newNobleSecretKey()
  const tx = db.transaction(STORE, 'readwrite')
  tx.objectStore(STORE).put(fresh, key)
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'))
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write aborted'))
  })
  return fresh
}

/** Without crypto.subtle (and so without Web Locks): pure-JS keys, lease-held slots. */
async function loadInsecure(): Promise<Identity | null> {
  if (typeof globalThis.crypto?.getRandomValues !== 'function') return null
  // Kept open for the page's life: the lease is given back from it on pagehide.
  const db = await openDb()
  const leases = leaseLocks(db, STORE)
  if (!leases) {
    db.close()
    return null
  }
  const slot = await chooseSlot(parseSlot(sessionGet()), (s, waitMs) => leases.tryLock(s, waitMs))
  if (slot === null) return null
  sessionSet(slot)
  const { nobleIdentity } = await import('../../shared/identity-noble')
  return nobleIdentity(await secretForSlot(db, slot))
}

async function load(): Promise<Identity | null> {
  if (typeof indexedDB === 'undefined' || typeof navigator === 'undefined') return null
  if (!globalThis.crypto?.subtle) return loadInsecure()
  if (!navigator.locks) return null
  const locks = navigator.locks
  const slot = await chooseSlot(parseSlot(sessionGet()), (s, waitMs) => holdLock(locks, `${LOCK_PREFIX}${s}`, waitMs))
  if (slot === null) return null
  sessionSet(slot)
  return identityFromKeys(await keysForSlot(slot))
}

let loading: Promise<Identity | null> | undefined

/**
 * This tab's identity, or null (then the socket id is the identity). Loaded once per page: later
 * calls share the first result, so one tab never takes two slots.
 */
export function loadBrowserIdentity(): Promise<Identity | null> {
  loading ??= new Promise<Identity | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), TIMEOUT_MS)
    load().then(
      (id) => {
        clearTimeout(timer)
        resolve(id)
      },
      () => {
        clearTimeout(timer)
        resolve(null)
      },
    )
  })
  return loading
}
