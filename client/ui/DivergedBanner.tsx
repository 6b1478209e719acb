import type { ReactNode } from 'react'
import { divergenceHint } from '../../shared/divergence'
import type { ApiRoom } from './api'

/**
 * "This run diverged" for the dashboard and the host page: the room paused itself at that step
 * (signaling-server/rooms.ts markDiverged). `action` is the host's way out (a new run).
 */
export function DivergedBanner({ room, action }: { room: ApiRoom; action?: ReactNode }) {
  const d = room.diverged
  if (!d) return null
  return (
    <div className="banner error" role="alert" data-testid="diverged-banner">
      <strong>Diverged at step {d.step}.</strong> {d.reason.charAt(0).toUpperCase() + d.reason.slice(1)}. The room paused itself; every volunteer stays
      connected. {divergenceHint(room.config)}
      {action ? <div className="btn-row">{action}</div> : null}
    </div>
  )
}
