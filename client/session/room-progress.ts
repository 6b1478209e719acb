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

/**
 * The room's progress as the server publishes it, as one step count for a peer's progress clock
 * (ProgressClock.setRoomProgress, docs/security.md): the checkpoint's step (the server accepted it as
 * close to the roster's median) or the lower median of what the other roster peers reported,
 * whichever is more. Peers that have not reported any progress yet (tabs still loading, fresh
 * joiners) do not count: twenty tabs arriving at once must not drag the median to 0 while the
 * swarm is at step 20,000. The server caps every report (rooms.ts sanitizeReport) and the median
 * leaves out a minority's claims either way.
 */
export function roomProgressStep(p: RoomProgress, self: string, roster: readonly string[]): number {
  const steps = p.peers
    .filter((x) => x.id !== self && roster.includes(x.id) && Number.isFinite(x.globalStep) && x.globalStep > 0)
    .map((x) => x.globalStep)
    .sort((a, b) => a - b)
  const median = steps.length ? steps[(steps.length - 1) >> 1] : 0
  return Math.max(p.checkpointStep ?? 0, median)
}
