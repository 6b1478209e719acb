import { describe, expect, it } from 'vitest'
import { allWithin, codecFor, decodeHalfBits, encodeHalfBits, ErrorFeedback, fp16Codec, fromHalf, halfTable, int8Codec, INT8_CHUNK, MAX_WIRE_VALUE, toHalf } from './codec'

describe('codecs', () => {
  const x = new Float32Array(5000)
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * (1 + (i % 7))

  it('fp32 is exact', () => {
    const c = codecFor('fp32')
    const r = c.decode(c.encode(x), x.length)
    expect(r.ok && Buffer.from(r.data.buffer).equals(Buffer.from(x.buffer))).toBe(true)
  })

  it('fp16 converts IEEE half exactly on known values and within 2^-11 relative error', () => {
    expect(toHalf(1)).toBe(0x3c00)
    expect(toHalf(-2)).toBe(0xc000)
    expect(toHalf(65504)).toBe(0x7bff)
    expect(toHalf(1e9)).toBe(0x7bff) // clamped, stays finite
    expect(toHalf(2 ** -24)).toBe(0x0001) // smallest subnormal
    expect(toHalf(0)).toBe(0)
    expect(fromHalf(0x3555)).toBeCloseTo(0.333251953125, 12)
    expect(fromHalf(toHalf(1 + 2 ** -11))).toBe(1) // ties to even
    const r = fp16Codec.decode(fp16Codec.encode(x), x.length)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    for (let i = 0; i < x.length; i++) expect(Math.abs(r.data[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11 + 2 ** -25)
  })

  it('int8 error is at most half a step of its chunk scale', () => {
    const bytes = int8Codec.encode(x)
    expect(bytes.byteLength).toBe(x.length + 4 * Math.ceil(x.length / INT8_CHUNK))
    const r = int8Codec.decode(bytes, x.length)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    for (let c = 0; c < x.length; c += INT8_CHUNK) {
      let m = 0
      for (let i = c; i < Math.min(x.length, c + INT8_CHUNK); i++) m = Math.max(m, Math.abs(x[i]))
      const step = m / 127
      for (let i = c; i < Math.min(x.length, c + INT8_CHUNK); i++) expect(Math.abs(r.data[i] - x[i])).toBeLessThanOrEqual(step / 2 + 1e-6)
    }
    const zeros = int8Codec.decode(int8Codec.encode(new Float32Array(3)), 3)
    expect(zeros.ok && Array.from(zeros.data)).toEqual([0, 0, 0])
  })

  it.each(['fp32', 'fp16', 'int8'] as const)('%s rejects NaN/Inf and wrong sizes', (name) => {
    const c = codecFor(name)
    for (const bad of [NaN, Infinity, -Infinity]) {
      const y = new Float32Array([1, 2, bad, 4])
      expect(c.decode(c.encode(y), 4).ok).toBe(false)
    }
    const good = c.encode(new Float32Array([1, 2, 3, 4]))
    expect(c.decode(good, 5).ok).toBe(false)
    expect(c.decode(good.subarray(0, good.byteLength - 1), 4).ok).toBe(false)
  })

  it('error feedback keeps the running sum of decoded messages close to the true sum', () => {
    const ef = new ErrorFeedback(int8Codec)
    const d = 2048
    const sumTrue = new Float64Array(d)
    const sumSeen = new Float64Array(d)
    let seed = 5
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5
    for (let t = 0; t < 50; t++) {
      const g = new Float32Array(d)
      for (let i = 0; i < d; i++) g[i] = rnd() * (i === 0 ? 100 : 0.01) // one large value crushes the chunk's small ones
      const r = int8Codec.decode(ef.encode('p/grad', g), d)
      if (!r.ok) throw new Error(r.error)
      for (let i = 0; i < d; i++) { sumTrue[i] += g[i]; sumSeen[i] += r.data[i] }
    }
    // Without feedback the small coordinates would be lost entirely (|error| ≈ the sum itself);
    // with it the accumulated error stays bounded by one quantisation step.
    for (let i = 1; i < d; i++) expect(Math.abs(sumTrue[i] - sumSeen[i])).toBeLessThanOrEqual(50 / 127 / 2 + 1e-3)
    expect(ef.residualNorm('p/grad')).toBeGreaterThan(0)
  })

  describe('fp16 fast path', () => {
    const bitsOf = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0]
    const enc = (vals: number[]) => {
      const h = new Uint16Array(vals.length)
      encodeHalfBits(new Uint32Array(new Float32Array(vals).buffer), h)
      return Array.from(h)
    }

    it('edge cases: ±0, subnormals, max half, clamp, Inf, NaN', () => {
      const cases: [number, number][] = [
        [0, 0x0000], [-0, 0x8000],
        [2 ** -24, 0x0001], [-(2 ** -24), 0x8001], // smallest subnormal
        [2 ** -25, 0x0000], // exactly half the smallest subnormal: tie → even (0)
        [2 ** -25 * 1.0000001, 0x0001], // just above the tie
        [3 * 2 ** -25, 0x0002], // 1.5 ulp: tie → even (2)
        [5 * 2 ** -25, 0x0002], // 2.5 ulp: tie → even (2)
        [2 ** -26, 0x0000], [1e-40, 0x0000], [-1e-40, 0x8000], // underflow keeps the sign
        [1023 * 2 ** -24, 0x03ff], // largest subnormal
        [2 ** -14 - 2 ** -25, 0x0400], // rounds up into the smallest normal
        [2 ** -14, 0x0400], // smallest normal
        [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], // ties to even in the normal range
        [1 + 2 ** -11 + 2 ** -20, 0x3c01],
        [2047 / 1024, 0x3fff],
        [65504, 0x7bff], [-65504, 0xfbff], // max half
        [65519, 0x7bff], [65520, 0x7bff], [1e9, 0x7bff], [-1e9, 0xfbff], [3.4e38, 0x7bff], // finite overflow clamps
        [Infinity, 0x7c00], [-Infinity, 0xfc00],
      ]
      const got = enc(cases.map((c) => c[0]))
      cases.forEach(([v, want], i) => {
        expect(got[i], `encode ${v}`).toBe(want)
        expect(toHalf(Math.fround(v)), `toHalf ${v}`).toBe(want)
      })
      const nan = enc([NaN, -NaN])
      for (const h of nan) {
        expect(h & 0x7c00).toBe(0x7c00)
        expect(h & 0x3ff).not.toBe(0)
      }
      expect(fromHalf(0x7bff)).toBe(65504)
      expect(fromHalf(0x0001)).toBe(2 ** -24)
      expect(Object.is(fromHalf(0x8000), -0)).toBe(true)
    })

    it('matches toHalf bit for bit on a dense sample of all float32 bit patterns', () => {
      // Every exponent (incl. Inf/NaN), many mantissas per exponent: stride coprime with 2^23.
      const n = 1 << 20
      const u = new Uint32Array(n)
      for (let i = 0; i < n; i++) u[i] = (i * 4099 + (i >>> 7)) >>> 0
      u[0] = 0x477fe000; u[1] = 0x477fefff; u[2] = 0x477ff000; u[3] = 0x38800000; u[4] = 0x387fffff; u[5] = 0x33000000; u[6] = 0x33000001
      const h = new Uint16Array(n)
      encodeHalfBits(u, h)
      const f = new Float32Array(u.buffer)
      let mismatches = 0
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(f[i])) { if ((h[i] & 0x7fff) !== 0x7e00) mismatches++; continue }
        if (h[i] !== toHalf(f[i])) mismatches++
      }
      expect(mismatches).toBe(0)
    })

    it('decode table equals fromHalf on all 65536 codes and rejects every Inf/NaN code', () => {
      const t = halfTable()
      let mismatches = 0
      for (let h = 0; h < 65536; h++) {
        const e = (h >>> 10) & 0x1f
        if (e === 0x1f && (h & 0x3ff) ? !Number.isNaN(t[h]) : !Object.is(t[h], fromHalf(h))) mismatches++
      }
      expect(mismatches).toBe(0)
      const all = new Uint16Array(65536).map((_, i) => i)
      const out = new Float32Array(65536)
      expect(decodeHalfBits(all, out)).toBe(0x7c00) // first non-finite code
      const finite = all.filter((h) => (h & 0x7c00) !== 0x7c00)
      expect(decodeHalfBits(finite, new Float32Array(finite.length))).toBe(-1)
      for (const bad of [0x7c00, 0xfc00, 0x7e00, 0xffff, 0x7c01]) {
        const bytes = fp16Codec.encode(new Float32Array([1, 2, 3]))
        new Uint16Array(bytes.buffer)[1] = bad
        const r = fp16Codec.decode(bytes, 3)
        expect(r.ok).toBe(false)
        if (!r.ok) expect(r.error).toContain('index 1')
      }
    })

    it('round trip is exact for every finite half value', () => {
      const t = halfTable()
      const vals = Array.from(t).filter((v) => Number.isFinite(v))
      const x = new Float32Array(vals)
      const r = fp16Codec.decode(fp16Codec.encode(x), x.length)
      expect(r.ok).toBe(true)
      if (r.ok) expect(Buffer.from(r.data.buffer).equals(Buffer.from(x.buffer))).toBe(true)
    })
  })

  it.each(['fp32', 'fp16', 'int8'] as const)('%s decodes payloads at any byte offset (framing subarrays)', (name) => {
    const c = codecFor(name)
    const bytes = c.encode(x)
    const ref = c.decode(bytes, x.length)
    for (const off of [1, 2, 3, 4]) {
      const buf = new Uint8Array(off + bytes.byteLength)
      buf.set(bytes, off)
      const r = c.decode(buf.subarray(off), x.length)
      expect(r.ok && ref.ok && Buffer.from(r.data.buffer).equals(Buffer.from(ref.data.buffer))).toBe(true)
    }
  })

  it('int8 encode is bit-identical to the Math.round reference, incl. ties and non-finite chunks', () => {
    const ref = (v: Float32Array) => {
      const chunks = Math.ceil(v.length / INT8_CHUNK)
      const out = new Uint8Array(4 * chunks + v.length)
      const scales = new Float32Array(out.buffer, 0, chunks)
      const q = new Int8Array(out.buffer, 4 * chunks, v.length)
      for (let c = 0; c < chunks; c++) {
        const a = c * INT8_CHUNK
        const b = Math.min(v.length, a + INT8_CHUNK)
        let m = 0
        let finite = true
        for (let i = a; i < b; i++) { const av = Math.abs(v[i]); if (av > m) m = av; else if (!(av <= m)) finite = false }
        const scale = finite && Number.isFinite(m) ? m / 127 : NaN
        scales[c] = scale
        const inv = scale > 0 && Number.isFinite(scale) ? 1 / scale : 0
        for (let i = a; i < b; i++) q[i] = Math.max(-127, Math.min(127, Math.round(v[i] * inv)))
      }
      return out
    }
    const y = new Float32Array(6 * INT8_CHUNK + 17)
    for (let i = 0; i < y.length; i++) y[i] = i < 2 * INT8_CHUNK ? ((i % 255) - 127) * 0.5 : Math.sin(i) * 2 ** ((i % 9) - 4)
    y[2 * INT8_CHUNK + 5] = NaN
    y[3 * INT8_CHUNK + 7] = -Infinity
    y.fill(0, 4 * INT8_CHUNK, 5 * INT8_CHUNK)
    y[4 * INT8_CHUNK + 3] = 1e-40 // subnormal-only chunk
    expect(Buffer.from(int8Codec.encode(y)).equals(Buffer.from(ref(y)))).toBe(true)
    expect(Buffer.from(int8Codec.encode(x)).equals(Buffer.from(ref(x)))).toBe(true)
  })
})

describe('magnitude bound (docs/security.md: finite but hostile values)', () => {
  const fp32 = codecFor('fp32')
  const decode32 = (values: number[], adopt = false) => {
    const x = Float32Array.from(values)
    return fp32.decode(new Uint8Array(x.buffer.slice(0)), x.length, adopt)
  }

  it('fp32 rejects 3.4e38 and anything beyond ±2^100, like NaN/Inf, wherever it sits', () => {
    for (const adopt of [false, true]) {
      for (const bad of [3.4e38, -3.4e38, 2 ** 101, -(2 ** 100) * (1 + 2 ** -23), Infinity, NaN]) {
        const values = Array.from({ length: 37 }, (_, i) => Math.sin(i))
        values[23] = bad
        const r = decode32(values, adopt)
        expect(r.ok, `${bad}`).toBe(false)
        if (!r.ok) expect(r.error).toMatch(/index 23/)
      }
    }
  })

  it('fp32 keeps values up to ±2^100 exactly (far above any honest parameter or sum)', () => {
    const values = [MAX_WIRE_VALUE, -MAX_WIRE_VALUE, 1e29, -1e12, 0, -0, 3.5, 2 ** -140]
    const r = decode32(values)
    expect(r.ok).toBe(true)
    if (r.ok) expect([...r.data]).toEqual(values.map((v) => Math.fround(v)))
  })

  it('int8 rejects a chunk scale that would decode beyond the bound', () => {
    const x = Float32Array.from({ length: 10 }, (_, i) => i)
    const bytes = int8Codec.encode(x)
    new Float32Array(bytes.buffer, 0, 1)[0] = 3.4e38 / 127
    const r = int8Codec.decode(bytes, x.length)
    expect(r.ok).toBe(false)
  })

  it('allWithin: the bit test and the plain one agree, custom limits included', () => {
    const x = Float32Array.from([1, -2, 3e20, -4e29])
    expect(allWithin(x)).toBe(true)
    expect(allWithin(x, 1e20)).toBe(false)
    expect(allWithin(x, 5e29)).toBe(true)
    expect(allWithin(Float32Array.from([1, 3.4e38]))).toBe(false)
    expect(allWithin(Float32Array.from([1, NaN]), 1e30)).toBe(false)
  })
})
