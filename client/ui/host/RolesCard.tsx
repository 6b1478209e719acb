import { useEffect, useState } from 'react'
import { ALGORITHM_DESCRIPTORS } from '../../../shared/algorithms/descriptors'
import type { PinnableRole } from '../../../shared/protocol/http'
import type { ApiRoom } from '../api'
import { peerLabel } from '../format'
import { peerNameIn } from './peer-names'
import type { HostAct } from './useHostActions'

const ROLE_TEXT: Record<PinnableRole, { title: string; what: string }> = {
  ps: { title: 'Parameter server', what: 'holds the model every worker pushes its updates to' },
  writer: { title: 'Checkpoint writer', what: 'its model becomes the room checkpoint' },
}

/** Rooms of a parameter-server algorithm elect a PS (its descriptor); a room that reports one has it anyway. */
export function roomHasPs(room: ApiRoom): boolean {
  return room.roles?.ps != null || Boolean(ALGORITHM_DESCRIPTORS[room.config.algorithm]?.roles.ps)
}

/** Who holds the room's roles, and the host's pins: a role pinned to a peer stays with it. */
export function RolesCard({ room, busy, act }: { room: ApiRoom; busy: boolean; act: HostAct }) {
  const roles: PinnableRole[] = roomHasPs(room) ? ['ps', 'writer'] : ['writer']
  return (
    <div className="card">
      <h2>Roles</h2>
      <p className="muted small">The server gives each role to the longest-serving healthy peer and moves it when that peer leaves. Pin a role to keep it on one peer, e.g. the best-connected laptop.</p>
      {roles.map((r) => <RoleRow key={r} role={r} room={room} busy={busy} act={act} />)}
    </div>
  )
}

function RoleRow({ role, room, busy, act }: { role: PinnableRole; room: ApiRoom; busy: boolean; act: HostAct }) {
  const { title, what } = ROLE_TEXT[role]
  const holder = room.roles?.[role] ?? null
  const pinned = room.roles?.pinned?.[role] ?? null
  const [target, setTarget] = useState<string>('')
  useEffect(() => {
    if (target && !room.peers.some((p) => p.id === target)) setTarget('')
  }, [room.peers, target])
  const targetPeer = room.peers.find((p) => p.id === target)
  const pin = () => {
    if (!targetPeer) return
    void act('Pin', { action: 'pin', role, peer: targetPeer.id }, `${title} pinned to ${peerLabel(targetPeer)}`)
  }
  const unpin = () => void act('Unpin', { action: 'pin', role }, `${title} unpinned: the server chooses it again`)

  return (
    <div data-testid={`role-${role}`}>
      <h3>{title}</h3>
      <p className="small">
        <strong>{holder ? peerNameIn(room, holder) : room.roles?.[role] === undefined ? '—' : 'nobody yet'}</strong>
        {pinned ? <span className="tag" title="pinned by the host">pinned</span> : null}
        {pinned && pinned !== holder ? <span className="muted"> (pinned to {peerNameIn(room, pinned)})</span> : null}
        <span className="muted"> · {what}</span>
      </p>
      <div className="inline-form">
        <label className="field grow">
          <span>Pin to</span>
          <select aria-label={`${title}: pin to`} value={target} onChange={(e) => setTarget(e.target.value)}>
            <option value="">Choose a peer…</option>
            {room.peers.map((p) => <option key={p.id} value={p.id}>{peerLabel(p)}{p.id === holder ? ' (now)' : ''}</option>)}
          </select>
        </label>
        <button className="btn" disabled={!targetPeer || targetPeer.id === pinned || busy} onClick={pin} aria-label={`Pin ${title.toLowerCase()}`}>Pin</button>
        <button className="btn" disabled={!pinned || busy} onClick={unpin} aria-label={`Unpin ${title.toLowerCase()}`}>Unpin</button>
      </div>
    </div>
  )
}
