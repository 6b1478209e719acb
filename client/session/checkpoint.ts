/**
 * Fetches the room's latest checkpoint (GET /api/rooms/:room/model?format=bin). The bytes come
 * from some volunteer, so the caller still checks schema hash, length and finiteness
 * (TfCompute.writeParams rejects NaN/Inf and wrong lengths).
 */
export async function fetchRoomCheckpoint(baseUrl: string, room: string): Promise<{ step: number; schemaHash: string; params: Float32Array } | null> {
  const res = await fetch(`${baseUrl}/api/rooms/${encodeURIComponent(room)}/model?format=bin`)
  if (res.status === 404) return null
  if (!res.ok) throw new Error(`checkpoint: HTTP ${res.status}`)
  const step = Number(res.headers.get('x-tabswarm-step') ?? 'NaN')
  const schemaHash = res.headers.get('x-tabswarm-schema-hash') ?? ''
  const buf = await res.arrayBuffer()
  if (!Number.isInteger(step) || buf.byteLength % 4 !== 0) throw new Error('checkpoint: malformed')
  return { step, schemaHash, params: new Float32Array(buf) }
}
