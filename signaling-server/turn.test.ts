import { describe, expect, it } from 'vitest'
import { DEFAULT_TURN_TTL_SEC, iceGrant, readIceSettings, renewDelayMs, turnCredential, type IceSettings } from './turn'

describe('TURN REST API credentials', () => {
  it('username is <expiry>:<id>, credential is base64(HMAC-SHA1(secret, username))', () => {
    // Expected value from `printf '%s' '1700003600:peer-1' | openssl dgst -sha1 -hmac S3cret -binary | base64`.
    const c = turnCredential('S3cret', 'peer-1', 3600, 1_700_000_000_000)
    expect(c.username).toBe('1700003600:peer-1')
    expect(c.credential).toBe('hc8WVcypC4GKKfjbUCWaewz2U0Q=')
    expect(c.expiresAt).toBe(1_700_003_600_000)
  })

  it('another secret, id or time gives another credential', () => {
    const base = turnCredential('a', 'p', 60, 1e12)
    expect(turnCredential('b', 'p', 60, 1e12).credential).not.toBe(base.credential)
    expect(turnCredential('a', 'q', 60, 1e12).credential).not.toBe(base.credential)
    expect(turnCredential('a', 'p', 60, 1e12 + 1000).username).not.toBe(base.username)
  })
})

describe('ICE settings from the environment', () => {
  it('nothing set: no servers, no TURN, no grant', () => {
    const s = readIceSettings({})
    expect(s).toEqual({ servers: [], turn: null })
    expect(iceGrant(s, 'p', 0)).toBeNull()
    expect(renewDelayMs(s)).toBeNull()
  })

  it('reads TURN_SECRET, TURN_URLS, TURN_TTL, ICE_SERVERS and STUN_URLS', () => {
    const s = readIceSettings({
      TURN_SECRET: 'x', TURN_URLS: 'turn:t.example:3478?transport=udp, turns:t.example:5349', TURN_TTL: '600',
      ICE_SERVERS: '[{"urls":"stun:a.example"}]', STUN_URLS: 'stun:b.example:3478',
    })
    expect(s.turn).toEqual({ secret: 'x', urls: ['turn:t.example:3478?transport=udp', 'turns:t.example:5349'], ttlSec: 600 })
    expect(s.servers).toEqual([{ urls: 'stun:a.example' }, { urls: 'stun:b.example:3478' }])
    expect(readIceSettings({ TURN_SECRET: 'x', TURN_URLS: 'turn:t' }).turn?.ttlSec).toBe(DEFAULT_TURN_TTL_SEC)
  })

  it('a bad value fails at startup naming the variable', () => {
    expect(() => readIceSettings({ TURN_SECRET: 'x' })).toThrow(/TURN_SECRET\/TURN_URLS/)
    expect(() => readIceSettings({ TURN_URLS: 'turn:t' })).toThrow(/TURN_SECRET\/TURN_URLS/)
    expect(() => readIceSettings({ TURN_SECRET: 'x', TURN_URLS: 'http://t' })).toThrow(/TURN_URLS/)
    expect(() => readIceSettings({ TURN_SECRET: 'x', TURN_URLS: 'turn:t', TURN_TTL: '1' })).toThrow(/TURN_TTL/)
    expect(() => readIceSettings({ ICE_SERVERS: '{' })).toThrow(/ICE_SERVERS/)
    expect(() => readIceSettings({ ICE_SERVERS: '[{"urls":"javascript:x"}]' })).toThrow(/ICE_SERVERS/)
    expect(() => readIceSettings({ STUN_URLS: 'turn:x' })).toThrow(/STUN_URLS/)
  })
})

describe('grants', () => {
  const settings: IceSettings = { servers: [{ urls: 'stun:s.example' }], turn: { secret: 'k', urls: ['turn:t.example'], ttlSec: 100 } }

  it('the server-wide servers, then TURN with a credential for this peer that expires after the TTL', () => {
    const g = iceGrant(settings, 'peer-7', 5_000_000)!
    expect(g.iceServers[0]).toEqual({ urls: 'stun:s.example' })
    const turn = g.iceServers[1]
    expect(turn.urls).toBe('turn:t.example')
    expect(turn.username).toBe('5100:peer-7')
    expect(turn.credential).toBe(turnCredential('k', 'peer-7', 100, 5_000_000).credential)
    expect(g.expiresAt).toBe(5_100_000)
  })

  it('renews at 80 % of the credential life, well before it expires', () => {
    expect(renewDelayMs(settings)).toBe(80_000)
  })

  it('STUN only: a grant with nothing that expires, and no renewal', () => {
    const stunOnly: IceSettings = { servers: settings.servers, turn: null }
    expect(iceGrant(stunOnly, 'p', 0)).toEqual({ iceServers: settings.servers, expiresAt: null })
    expect(renewDelayMs(stunOnly)).toBeNull()
  })
})
