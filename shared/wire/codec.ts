import type { Compression } from '../config'

/**
 * Wire codecs for flat Float32 payloads (room config `compression`). Byte order is the
 * platform's, which is little-endian on every browser and Node target we support.
 *   fp32  4 bytes/element, exact.
 *   fp16  2 bytes/element, IEEE binary16 with round-to-nearest-even; finite values beyond
 *         ±65504 are clamped so a finite model never turns into Inf on the wire.
 *   int8  per chunk of INT8_CHUNK elements one float32 scale (max|x|/127) followed by the
 *         int8 codes: 1 byte/element + 4 bytes/chunk. Error ≤ scale/2 per element.
 * Decoding validates the byte size against the declared element count and rejects NaN/Inf and
 * any value beyond ±MAX_WIRE_VALUE.
 */

export const INT8_CHUNK = 1024
const FP16_MAX = 65504

/**
 * The largest magnitude a decoded value may have (2^100 ≈ 1.3e30); beyond it a message is
 * rejected like one with NaN/Inf (docs/security.md: 3.4e38 is finite, and two of them summed are Inf).
 * Honest payloads are parameters (|x| ≲ 10²), gradients and sample-weighted sums of them over a
 * room (≲ 10¹² even for 256 peers × 2^24 samples), twenty orders of magnitude below; a run whose
 * values got anywhere near this has long turned its loss into Inf (a float32 square overflows at
 * 1.8e19). And 256 values of this size (MAX_PEERS_PER_ROOM: one ring all-reduce's contributions)
 * sum to 3.2e32, nowhere near float32's 3.4e38, so no sum of accepted values can overflow.
 * A power of two: exact in float32, so the check is one integer compare on the bits.
 */
export const MAX_WIRE_VALUE = 2 ** 100
/** MAX_WIRE_VALUE's float32 bits, sign cleared. */
const MAX_WIRE_BITS = 0x71800000
/** Added to |bits|: carries into bit 31 exactly when |bits| > MAX_WIRE_BITS (NaN/Inf included). */
const OVER_BOUND_BIAS = 0x80000000 - MAX_WIRE_BITS - 1

export type DecodeResult = { ok: true; data: Float32Array } | { ok: false; error: string }

export interface Codec {
  readonly name: Compression
  byteLength(length: number): number
  /**
   * The wire bytes of x. fp32 returns a VIEW of x (no copy): the caller must consume the bytes
   * (the mesh cuts them into frames, which copies) before x can change.
   */
  encode(x: Float32Array): Uint8Array
  /**
   * `adopt`: the caller hands `bytes` over for good (a freshly reassembled message), so fp32 may
   * return a view of it instead of a copy.
   */
  decode(bytes: Uint8Array, length: number, adopt?: boolean): DecodeResult
}

/**
 * Index of the first NaN/±Inf or value beyond ±MAX_WIRE_VALUE in x, or -1. Integer test on the
 * bits, whole array in one pass. Needs x 4-byte aligned (every Float32Array is).
 */
function firstOutOfBound(x: Float32Array): number {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length)
  // (bits & 0x7fffffff) > MAX_WIRE_BITS ⇔ bit 31 of (abs bits + OVER_BOUND_BIAS); no carry out of 32 bits.
  let acc = 0
  for (let i = 0; i < u.length; i++) acc |= ((u[i] & 0x7fffffff) + OVER_BOUND_BIAS) | 0
  if (acc >= 0) return -1
  for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i]) <= MAX_WIRE_VALUE)) return i
  return -1
}

/** Whether every value of x is finite and within ±limit (default MAX_WIRE_VALUE). */
export function allWithin(x: Float32Array, limit = MAX_WIRE_VALUE): boolean {
  if (limit === MAX_WIRE_VALUE) return firstOutOfBound(x) < 0
  for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i]) <= limit)) return false
  return true
}

function outOfBoundError(x: Float32Array, i: number): string {
  return Number.isFinite(x[i]) ? `value ${x[i]} at index ${i} beyond ±${MAX_WIRE_VALUE}` : `non-finite value at index ${i}`
}

function boundedResult(data: Float32Array): DecodeResult {
  const bad = firstOutOfBound(data)
  return bad < 0 ? { ok: true, data } : { ok: false, error: outOfBoundError(data, bad) }
}

function sizeError(name: string, got: number, want: number): DecodeResult {
  return { ok: false, error: `${name}: ${got} bytes, expected ${want}` }
}

export const fp32Codec: Codec = {
  name: 'fp32',
  byteLength: (n) => 4 * n,
  encode(x) {
    // No copy here: framing copies into the frames synchronously (WebRtcMesh.send), and a copy
    // per side was a measurable part of the gap to raw data-channel throughput (docs/benchmarks-history.md, 2026-12-01).
    return new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
  },
  decode(bytes, length, adopt = false) {
    if (bytes.byteLength !== 4 * length) return sizeError('fp32', bytes.byteLength, 4 * length)
    if (adopt && bytes.byteOffset % 4 === 0) return boundedResult(new Float32Array(bytes.buffer, bytes.byteOffset, length))
    const out = new Float32Array(length)
    new Uint8Array(out.buffer).set(bytes)
    return boundedResult(out)
  },
}

// ---- IEEE half precision ----
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

export function toHalf(v: number): number {
  if (Number.isFinite(v)) v = Math.max(-FP16_MAX, Math.min(FP16_MAX, v))
  f32[0] = v
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0) // Inf / NaN
  let e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit 1 in and round to nearest even.
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    const half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    return sign | (rem > mid || (rem === mid && (half & 1)) ? half + 1 : half)
  }
  const half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // Rounding may carry into the exponent, which is exactly the right result (up to Inf).
  return sign | (rem > 0x1000 || (rem === 0x1000 && (half & 1)) ? half + 1 : half)
}

export function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 0x1f) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

/**
 * Whole-array float32 → binary16 on the raw bits (no per-element allocation, no float maths).
 * Bit-identical to toHalf() for every float32 input (checked exhaustively over all 2^32 bit
 * patterns when this was written; the unit tests check a dense sample): round to nearest even,
 * finite values beyond ±65504 clamp to ±65504, ±Inf stay ±Inf, NaN → quiet NaN (sign kept),
 * ±0 keep their sign, half subnormals rounded to nearest even.
 * A table-driven variant (per-exponent base/shift, one formula for all exponents) measured
 * ~20 % slower in V8 than this version, whose normal-range case is a single predictable branch.
 */
export function encodeHalfBits(src: Uint32Array, dst: Uint16Array): void {
  const n = src.length
  for (let i = 0; i < n; i++) {
    const b = src[i]
    const a = b & 0x7fffffff
    let h: number
    if ((a - 0x38800000) >>> 0 <= 0x0effe000) {
      // Normal half: |x| in [2^-14, 65504]. Rebias the exponent (−112 << 23), add 0xfff plus the
      // kept mantissa's lowest bit (ties to even) and take the top bits; a carry out of the
      // mantissa correctly bumps the exponent.
      h = (a - 0x37fff001 + ((a >>> 13) & 1)) >>> 13
    } else if (a < 0x38800000) {
      if (a < 0x33000000) h = 0 // below 2^-25 (half of the smallest subnormal): ±0
      else {
        // Subnormal half: shift the mantissa with its implicit 1 right by 14..24, rounding to even.
        const sh = 126 - (a >>> 23)
        const m = (a & 0x7fffff) | 0x800000
        h = (m + (1 << (sh - 1)) - 1 + ((m >>> sh) & 1)) >>> sh
      }
    } else h = a < 0x7f800000 ? 0x7bff : a === 0x7f800000 ? 0x7c00 : 0x7e00 // clamp / Inf / NaN
    dst[i] = h | ((b >>> 16) & 0x8000)
  }
}

let HALF_TABLE: Float32Array | undefined

/** float32 value of every binary16 bit pattern (256 KiB, built on first use). */
export function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    const t = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) t[h] = fromHalf(h)
    HALF_TABLE = t
  }
  return HALF_TABLE
}

/**
 * binary16 → float32 through the lookup table. Returns the index of the first Inf/NaN code
 * (exponent bits all ones), or -1 if every value is finite; dst is fully written either way.
 */
export function decodeHalfBits(src: Uint16Array, dst: Float32Array): number {
  const t = halfTable()
  const n = src.length
  // (h & 0x7fff) >= 0x7c00 ⇔ non-finite ⇔ bit 15 of (h & 0x7fff) + 0x0400: OR it up branch-free.
  let acc = 0
  for (let i = 0; i < n; i++) {
    const h = src[i]
    dst[i] = t[h]
    acc |= (h & 0x7fff) + 0x0400
  }
  if ((acc & 0x8000) === 0) return -1
  for (let i = 0; i < n; i++) if ((src[i] & 0x7c00) === 0x7c00) return i
  return -1
}

export const fp16Codec: Codec = {
  name: 'fp16',
  byteLength: (n) => 2 * n,
  encode(x) {
    const h = new Uint16Array(x.length)
    encodeHalfBits(new Uint32Array(x.buffer, x.byteOffset, x.length), h)
    return new Uint8Array(h.buffer)
  },
  decode(bytes, length) {
    if (bytes.byteLength !== 2 * length) return sizeError('fp16', bytes.byteLength, 2 * length)
    let h: Uint16Array
    if ((bytes.byteOffset & 1) === 0) h = new Uint16Array(bytes.buffer, bytes.byteOffset, length)
    else {
      h = new Uint16Array(length) // unaligned frame payload: one aligned copy
      new Uint8Array(h.buffer).set(bytes)
    }
    const out = new Float32Array(length)
    const bad = decodeHalfBits(h, out)
    return bad < 0 ? { ok: true, data: out } : { ok: false, error: `non-finite value at index ${bad}` }
  },
}

function int8Chunks(n: number): number {
  return Math.ceil(n / INT8_CHUNK)
}

export const int8Codec: Codec = {
  name: 'int8',
  byteLength: (n) => 4 * int8Chunks(n) + n,
  encode(x) {
    const len = x.length
    const chunks = int8Chunks(len)
    const out = new Uint8Array(4 * chunks + len)
    const scales = new Float32Array(out.buffer, 0, chunks)
    const q = new Int8Array(out.buffer, 4 * chunks, len)
    for (let c = 0; c < chunks; c++) {
      const a = c * INT8_CHUNK
      const b = Math.min(len, a + INT8_CHUNK)
      // Branch-free max|x|; Math.max propagates NaN and Inf makes m infinite, so any non-finite
      // value gives a NaN scale and the receiver rejects the message.
      let m = 0
      for (let i = a; i < b; i++) m = Math.max(m, Math.abs(x[i]))
      const scale = Number.isFinite(m) ? m / 127 : NaN
      scales[c] = scale
      const inv = scale > 0 && Number.isFinite(scale) ? 1 / scale : 0
      for (let i = a; i < b; i++) {
        // Exactly Math.round (half up), which V8 compiles to a slow path: floor(y) is exact and
        // so is y − floor(y) for |y| < 2^52. The clamp never fires (|y| ≤ 127·(1+3·2^-53)); it
        // guards Int8Array's wrap-around.
        const y = x[i] * inv
        const r = Math.floor(y)
        q[i] = Math.max(-127, Math.min(127, r + +(y - r >= 0.5)))
      }
    }
    return out
  },
  decode(bytes, length) {
    const chunks = int8Chunks(length)
    const want = 4 * chunks + length
    if (bytes.byteLength !== want) return sizeError('int8', bytes.byteLength, want)
    // Float32 scales need 4-byte alignment: view in place when aligned, else one aligned copy.
    const src = (bytes.byteOffset & 3) === 0 ? bytes : bytes.slice()
    const scales = new Float32Array(src.buffer, src.byteOffset, chunks)
    const q = new Int8Array(src.buffer, src.byteOffset + 4 * chunks, length)
    const out = new Float32Array(length)
    for (let c = 0; c < chunks; c++) {
      const s = scales[c]
      // A code is at most 128 in magnitude (−128 is a valid Int8, though no encoder writes it).
      if (!(s >= 0 && s * 128 <= MAX_WIRE_VALUE)) return { ok: false, error: `int8: bad scale ${s} in chunk ${c}` }
      const a = c * INT8_CHUNK
      const b = Math.min(length, a + INT8_CHUNK)
      for (let i = a; i < b; i++) out[i] = q[i] * s
    }
    return { ok: true, data: out }
  },
}

export const CODECS: Record<Compression, Codec> = { fp32: fp32Codec, fp16: fp16Codec, int8: int8Codec }

export function codecFor(c: Compression): Codec {
  return CODECS[c]
}

/**
 * Error feedback (EF-SGD style): what compression lost last time is added back before the next
 * encode, so the sum of what the receiver sees tracks the sum of what was meant — needed by
 * algorithms whose messages are increments (gradients, deltas) to stay unbiased. One residual
 * per key (e.g. `${peer}/${kind}`); a length change resets it.
 */
export class ErrorFeedback {
  private residual = new Map<string, Float32Array>()

  constructor(private readonly codec: Codec) {}

  /** Encodes x + residual[key] and stores the new residual (what the decoder will not see). */
  encode(key: string, x: Float32Array): Uint8Array {
    let r = this.residual.get(key)
    if (!r || r.length !== x.length) r = new Float32Array(x.length)
    const target = new Float32Array(x.length)
    for (let i = 0; i < x.length; i++) target[i] = x[i] + r[i]
    const bytes = this.codec.encode(target)
    const back = this.codec.decode(bytes, x.length)
    if (back.ok) {
      for (let i = 0; i < x.length; i++) r[i] = target[i] - back.data[i]
      this.residual.set(key, r)
    } else {
      // Non-finite input: do not poison future messages with a NaN residual.
      this.residual.delete(key)
    }
    return bytes
  }

  reset(key?: string): void {
    if (key === undefined) this.residual.clear()
    else this.residual.delete(key)
  }

  residualNorm(key: string): number {
    const r = this.residual.get(key)
    if (!r) return 0
    let s = 0
    for (let i = 0; i < r.length; i++) s += r[i] * r[i]
    return Math.sqrt(s)
  }
}
