import { codecFor, fromHalf, toHalf } from '../shared/wire/codec'
import type { Compression } from '../shared/config'
import { load, median, writeResult } from './common'

/**
 * Issue 4 wire-codec micro benchmark: encode/decode throughput of the fp16 and int8 codecs (fp32
 * as reference) on flat Float32Arrays of 1M and 6M elements, in one process, no network.
 * MB/s counts fp32-equivalent model bytes (4 bytes per element) so it compares directly with the
 * data-channel MB/s of bench/transport.ts. Median (and best) of N timed repetitions after warm-up.
 * 'fp16-scalar' is the pre-issue-4 per-element fp16 path (toHalf/fromHalf per value), kept as an
 * in-run reference so before/after can be compared under the same machine load.
 *   npx tsx bench/codec.ts [--quick]      → bench/results/codec.json (codec-quick.json)
 */
/** The old fp16 codec, element by element (encode → Uint16 codes, decode with the finite check). */
const fp16Scalar = {
  encode(x: Float32Array): Uint8Array {
    const h = new Uint16Array(x.length)
    for (let i = 0; i < x.length; i++) h[i] = toHalf(x[i])
    return new Uint8Array(h.buffer)
  },
  decode(bytes: Uint8Array, length: number) {
    const h = new Uint16Array(length)
    new Uint8Array(h.buffer).set(bytes)
    const out = new Float32Array(length)
    for (let i = 0; i < length; i++) {
      if ((h[i] & 0x7c00) === 0x7c00) return { ok: false as const, error: `non-finite value at index ${i}` }
      out[i] = fromHalf(h[i])
    }
    return { ok: true as const, data: out }
  },
}

type BenchCodec = Compression | 'fp16-scalar'

export function runCodecBench(o: { sizes?: number[]; reps?: number; codecs?: BenchCodec[] } = {}) {
  const sizes = o.sizes ?? [1_000_000, 6_000_000]
  const reps = o.reps ?? 15
  const names = o.codecs ?? (['fp32', 'fp16', 'int8', 'fp16-scalar'] as BenchCodec[])
  const loadBefore = load()
  const rows = []
  for (const n of sizes) {
    // Model-like values: mostly small weights with a spread of magnitudes (incl. subnormal halfs).
    let seed = 12345
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5
    const x = new Float32Array(n)
    for (let i = 0; i < n; i++) x[i] = rnd() * 2 ** ((i % 23) - 16)
    const mb = (4 * n) / 1e6
    for (const name of names) {
      const c = name === 'fp16-scalar' ? fp16Scalar : codecFor(name)
      const enc: number[] = []
      const dec: number[] = []
      let bytes = c.encode(x)
      for (let r = 0; r < reps + 3; r++) {
        const t0 = performance.now()
        bytes = c.encode(x)
        const t1 = performance.now()
        const d = c.decode(bytes, n)
        const t2 = performance.now()
        if (!d.ok) throw new Error(`${name}: ${d.error}`)
        if (r >= 3) { enc.push(t1 - t0); dec.push(t2 - t1) }
      }
      const r1 = (v: number) => +v.toFixed(1)
      const row = {
        codec: name, elements: n, wireBytes: bytes.byteLength, reps,
        encodeMs: +median(enc).toFixed(3), decodeMs: +median(dec).toFixed(3),
        encodeMBps: r1(mb / (median(enc) / 1000)), decodeMBps: r1(mb / (median(dec) / 1000)),
        encodeMBpsBest: r1(mb / (Math.min(...enc) / 1000)), decodeMBpsBest: r1(mb / (Math.min(...dec) / 1000)),
      }
      console.log(`  ${name} ${(n / 1e6).toFixed(0)}M: encode ${row.encodeMBps} MB/s (${row.encodeMs} ms), decode ${row.decodeMBps} MB/s (${row.decodeMs} ms)`)
      rows.push(row)
    }
  }
  return { unit: 'fp32-equivalent MB/s (4 bytes/element), median of reps', rows, load: { before: loadBefore, after: load() } }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick')
  console.log(`codec: encode/decode throughput (loadavg ${load().join('/')})`)
  const r = runCodecBench(quick ? { reps: 5 } : {})
  console.log('wrote', writeResult(quick ? 'codec-quick' : 'codec', r))
}
