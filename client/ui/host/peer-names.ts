import type { ApiRoom } from '../api'
import { peerLabel, shortId } from '../format'

/** A peer's name as the host cards show it: from the roster, else from those joining or away, else its short id. */
export function peerNameIn(room: ApiRoom, id: string): string {
  const p = room.peers.find((x) => x.id === id) ?? room.joining?.find((x) => x.id === id)
  return p ? peerLabel(p) : shortId(id)
}
