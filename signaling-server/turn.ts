import { createHmac } from 'node:crypto'
import { z } from 'zod'
import { iceServerSchema, type IceServer } from '../shared/config'

/**
 * Server-wide ICE servers and short-lived TURN credentials (docs/architecture.md "TURN relays").
 *
 * The credentials follow the TURN REST API scheme (draft-uberti-behave-turn-rest) that coturn
 * checks with `use-auth-secret` + `static-auth-secret`: the username is
 * `<expiry unix seconds>:<volunteer id>`, the password base64(HMAC-SHA1(secret, username)).
 * The TURN server needs no database and no call back to us: it recomputes the HMAC and refuses
 * a username whose expiry has passed. A credential is only good until its expiry, and it names
 * the volunteer it was issued to, so one leaked from a tab is useless to a stranger for long
 * and can be traced in the TURN server's log.
 */

export interface TurnSettings {
  /** coturn's static-auth-secret. */
  secret: string
  /** turn:/turns: URLs the credentials are good for. */
  urls: string[]
  /** How long one credential lives. */
  ttlSec: number
}

export interface IceSettings {
  /** STUN/TURN servers every volunteer gets, before any room's own (ICE_SERVERS, STUN_URLS). */
  servers: IceServer[]
  turn: TurnSettings | null
}

export const NO_ICE_SETTINGS: IceSettings = { servers: [], turn: null }

/** One hour: a day's class renews a few times; a leaked credential is stale by the next lesson. */
export const DEFAULT_TURN_TTL_SEC = 3600
/** Short enough for tests, long enough that renewal (at RENEW_AT_FRACTION) is not a flood. */
export const MIN_TURN_TTL_SEC = 10
export const MAX_TURN_TTL_SEC = 7 * 24 * 3600
/** The server sends fresh credentials when this fraction of a credential's life has passed. */
export const RENEW_AT_FRACTION = 0.8

const turnUrlSchema = z.string().regex(/^turns?:[^\s,]+$/, "each TURN_URLS entry must start with 'turn:' or 'turns:'")
const stunUrlSchema = z.string().regex(/^stun:[^\s,]+$/, "each STUN_URLS entry must start with 'stun:'")

const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean)

/**
 * Reads TURN_SECRET, TURN_URLS, TURN_TTL (seconds), ICE_SERVERS (a JSON array of RTCIceServer)
 * and STUN_URLS (comma-separated). Throws naming the variable on a bad value, so a typo fails at
 * startup. TURN_SECRET and TURN_URLS come together or not at all.
 */
export function readIceSettings(env: NodeJS.ProcessEnv): IceSettings {
  const servers: IceServer[] = []
  if (env.ICE_SERVERS) {
    let json: unknown
    try {
      json = JSON.parse(env.ICE_SERVERS)
    } catch {
      throw new Error('invalid setting ICE_SERVERS: not JSON (a JSON array of {urls, username?, credential?})')
    }
    const r = z.array(iceServerSchema).max(8).safeParse(json)
    if (!r.success) throw new Error(`invalid setting ICE_SERVERS: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`)
    servers.push(...r.data)
  }
  const stun = list(env.STUN_URLS)
  if (stun.length) {
    const r = z.array(stunUrlSchema).max(8).safeParse(stun)
    if (!r.success) throw new Error(`invalid setting STUN_URLS: ${r.error.issues[0]?.message}`)
    servers.push({ urls: r.data.length === 1 ? r.data[0] : r.data })
  }
  const secret = env.TURN_SECRET ?? ''
  const urls = list(env.TURN_URLS)
  if (!secret !== !urls.length) throw new Error('invalid setting TURN_SECRET/TURN_URLS: set both (or neither)')
  if (!secret) return { servers, turn: null }
  const u = z.array(turnUrlSchema).max(8).safeParse(urls)
  if (!u.success) throw new Error(`invalid setting TURN_URLS: ${u.error.issues[0]?.message}`)
  const ttl = z.coerce.number().int().min(MIN_TURN_TTL_SEC).max(MAX_TURN_TTL_SEC).default(DEFAULT_TURN_TTL_SEC)
    .safeParse(env.TURN_TTL || undefined)
  if (!ttl.success) throw new Error(`invalid setting TURN_TTL: seconds, ${MIN_TURN_TTL_SEC}…${MAX_TURN_TTL_SEC}`)
  return { servers, turn: { secret, urls: u.data, ttlSec: ttl.data } }
}

export interface TurnCredential {
  username: string
  credential: string
  /** Unix milliseconds after which the TURN server refuses it. */
  expiresAt: number
}

/** The TURN REST API credential for `user`, valid for `ttlSec` from `nowMs`. */
export function turnCredential(secret: string, user: string, ttlSec: number, nowMs: number): TurnCredential {
  // Rounded up: a credential lives at least ttlSec, so the renewal at RENEW_AT_FRACTION is always in time.
  const expiry = Math.ceil(nowMs / 1000) + ttlSec
  const username = `${expiry}:${user}`
  const credential = createHmac('sha1', secret).update(username).digest('base64')
  return { username, credential, expiresAt: expiry * 1000 }
}

export interface IceGrant {
  iceServers: IceServer[]
  /** When the TURN credentials in it expire; null when it holds none. */
  expiresAt: number | null
}

/** What one volunteer gets: the server-wide servers, then TURN with its own fresh credential. */
export function iceGrant(settings: IceSettings, peerId: string, nowMs: number): IceGrant | null {
  if (!settings.turn) return settings.servers.length ? { iceServers: settings.servers, expiresAt: null } : null
  const c = turnCredential(settings.turn.secret, peerId, settings.turn.ttlSec, nowMs)
  const urls = settings.turn.urls.length === 1 ? settings.turn.urls[0] : settings.turn.urls
  return { iceServers: [...settings.servers, { urls, username: c.username, credential: c.credential }], expiresAt: c.expiresAt }
}

/** When to push the next grant: RENEW_AT_FRACTION into the credential's life (ms from now). */
export function renewDelayMs(settings: IceSettings): number | null {
  return settings.turn ? Math.round(settings.turn.ttlSec * 1000 * RENEW_AT_FRACTION) : null
}
