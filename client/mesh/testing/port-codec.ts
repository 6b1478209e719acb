/**
 * JSON for test-harness messages that carry typed arrays (Float32Array payloads, Uint8Array
 * frames), for channels that only move strings (Playwright's page.evaluate / exposeFunction).
 * Node's IPC with `serialization: 'advanced'` needs none of this.
 */
const CHUNK = 0x8000

function toBase64(u8: Uint8Array): string {
  let s = ''
  for (let i = 0; i < u8.length; i += CHUNK) s += String.fromCharCode(...u8.subarray(i, i + CHUNK))
  return btoa(s)
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

export function encodePortMessage(m: unknown): string {
  return JSON.stringify(m, (_k, v: unknown) => {
    if (v instanceof Float32Array) return { $f32: toBase64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) }
    if (v instanceof Uint8Array) return { $u8: toBase64(v) }
    return v
  })
}

export function decodePortMessage<T>(s: string): T {
  return JSON.parse(s, (_k, v: unknown) => {
    if (v && typeof v === 'object') {
      const o = v as { $f32?: string; $u8?: string }
      if (typeof o.$f32 === 'string') return new Float32Array(fromBase64(o.$f32).buffer)
      if (typeof o.$u8 === 'string') return fromBase64(o.$u8)
    }
    return v
  }) as T
}
