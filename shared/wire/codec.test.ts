import { describe, expect, it } from 'vitest'
import { codecFor, ErrorFeedback, fp16Codec, fromHalf, int8Codec, INT8_CHUNK, toHalf } from './codec'

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
})
