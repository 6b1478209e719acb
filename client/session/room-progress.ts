import { z } from 'zod'
import type { RoomProgress } from './swarm-session'

/**
 * What GET /api/rooms/:room says about progress: the checkpoint's step and each roster peer's
 * reported global step. Loose on purpose (only these fields): the rest of the view is the
 * dashboard's business and may grow.
 */
const progressSchema = z.object({
  checkpointStep: z.number().int().min(0).nullable().optional(),
  peers: z.array(z.object({ id: z.string(), globalStep: z.number().min(0).optional(), step: z.number().min(0).optional() })),
})

/** Reads the room's progress for SwarmSession.shouldResume (browser and Node volunteers alike). */
export async function fetchRoomProgress(baseUrl: string, room: string, signal?: AbortSignal): Promise<RoomProgress> {
  const res = await fetch(`${baseUrl}/api/rooms/${encodeURIComponent(room)}`, { signal, cache: 'no-store' })
  if (!res.ok) throw new Error(`room progress: HTTP ${res.status}`)
  const r = progressSchema.safeParse(await res.json())
  if (!r.success) throw new Error(`room progress: ${r.error.issues[0]?.message ?? 'malformed'}`)
  return {
    checkpointStep: r.data.checkpointStep ?? null,
    peers: r.data.peers.map((p) => ({ id: p.id, globalStep: Math.max(p.globalStep ?? 0, p.step ?? 0) })),
  }
}
