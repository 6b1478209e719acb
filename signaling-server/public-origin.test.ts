import type { NetworkInterfaceInfo } from 'node:os'
import { describe, expect, it } from 'vitest'
import { readSettings } from './env'
import { isLoopbackHost, lanAddresses, lanOrigin, normalizePublicUrl, resolvePublicOrigin } from './public-origin'

/** Shaped like os.networkInterfaces() on a laptop: loopback, a docker bridge-less LAN, IPv6. */
const IFACES: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  wlan0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: 'aa:bb:cc:dd:ee:ff', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: '192.168.1.20', netmask: '255.255.255.0', family: 'IPv4', mac: 'aa:bb:cc:dd:ee:ff', internal: false, cidr: '192.168.1.20/24' },
  ],
}

describe('public origin', () => {
  it('lists LAN IPv4 addresses only', () => {
    expect(lanAddresses(IFACES)).toEqual(['192.168.1.20'])
    expect(lanAddresses({ lo: IFACES.lo })).toEqual([])
  })

  it('derives the LAN origin from where the server listens', () => {
    expect(lanOrigin('0.0.0.0', 8080, ['192.168.1.20', '10.0.0.2'])).toBe('http://192.168.1.20:8080')
    expect(lanOrigin('::', 8080, [])).toBeNull()
    expect(lanOrigin('127.0.0.1', 8080, ['192.168.1.20'])).toBeNull()
    expect(lanOrigin('10.0.0.2', 9000, ['192.168.1.20'])).toBe('http://10.0.0.2:9000')
  })

  it('recognizes loopback hosts', () => {
    for (const h of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '0.0.0.0']) expect(isLoopbackHost(h), h).toBe(true)
    for (const h of ['192.168.1.20', 'class.example.org', '10.0.0.1', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false)
  })

  it('picks PUBLIC_URL, then a non-loopback request origin, then the LAN origin, else warns', () => {
    const lanUrl = 'http://192.168.1.20:8080'
    expect(resolvePublicOrigin({ publicUrl: 'https://class.example.org', lanUrl, requestHost: 'localhost:8080' }))
      .toEqual({ url: 'https://class.example.org', source: 'PUBLIC_URL', localOnly: false })
    // Someone reached us through a domain or a LAN address: they can pass that one on.
    expect(resolvePublicOrigin({ publicUrl: null, lanUrl, requestHost: 'tabswarm.school.lan:8080' }))
      .toEqual({ url: 'http://tabswarm.school.lan:8080', source: 'request', localOnly: false })
    expect(resolvePublicOrigin({ publicUrl: null, lanUrl, requestHost: 'localhost:8080' }))
      .toEqual({ url: lanUrl, source: 'lan', localOnly: false })
    expect(resolvePublicOrigin({ publicUrl: null, lanUrl, requestHost: '[::1]:8080' }).url).toBe(lanUrl)
    expect(resolvePublicOrigin({ publicUrl: null, lanUrl: null, requestHost: 'localhost:8080' }))
      .toEqual({ url: 'http://localhost:8080', source: 'request', localOnly: true })
    expect(resolvePublicOrigin({ publicUrl: 'http://127.0.0.1:8080', lanUrl, requestHost: 'localhost:8080' }).localOnly).toBe(true)
  })

  it('validates PUBLIC_URL from the environment and the command line', () => {
    expect(normalizePublicUrl('https://class.example.org/')).toBe('https://class.example.org')
    expect(normalizePublicUrl('http://192.168.1.20:8080')).toBe('http://192.168.1.20:8080')
    expect(() => normalizePublicUrl('192.168.1.20:8080')).toThrow(/PUBLIC_URL/)
    expect(() => normalizePublicUrl('ftp://x')).toThrow(/http/)
    expect(readSettings([], { PUBLIC_URL: 'https://a.example/' }).publicUrl).toBe('https://a.example')
    expect(readSettings(['--public-url', 'http://10.0.0.5:8080'], { PUBLIC_URL: 'https://a.example' }).publicUrl).toBe('http://10.0.0.5:8080')
    expect(readSettings([], {}).publicUrl).toBeNull()
    expect(() => readSettings([], { PUBLIC_URL: 'nope' })).toThrow(/PUBLIC_URL/)
  })
})
