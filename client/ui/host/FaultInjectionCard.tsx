import { useEffect, useState } from 'react'
import type { ApiRoom } from '../api'
import { peerLabel } from '../format'
import type { HostAct } from './useHostActions'

/** Disconnect, slow down or delay one peer, so the class sees how the swarm copes. */
export function FaultInjectionCard({ room, busy, act }: { room: ApiRoom; busy: boolean; act: HostAct }) {
  const [target, setTarget] = useState<string>('')
  const [factor, setFactor] = useState(4)
  const [latency, setLatency] = useState(500)
  useEffect(() => {
    if (target && !room.peers.some((p) => p.id === target)) setTarget('')
  }, [room.peers, target])
  const peer = room.peers.find((p) => p.id === target)
  const peerName = peer ? peerLabel(peer) : ''
  const off = !target || busy

  return (
    <div className="card">
      <h2>Fault injection</h2>
      <p className="muted small">Show the class what happens when a volunteer drops out or has a slow connection.</p>
      <label className="field">
        <span>Peer</span>
        <select aria-label="Peer" value={target} onChange={(e) => setTarget(e.target.value)}>
          <option value="">Choose a peer…</option>
          {room.peers.map((p) => <option key={p.id} value={p.id}>{peerLabel(p)}{p.backend ? ` (${p.backend})` : ''}</option>)}
        </select>
      </label>
      <div className="fault-rows">
        <div className="fault-row">
          <button className="btn" disabled={off} onClick={() => act('Disconnect', { action: 'disconnect', peer: target }, `${peerName} disconnected`)}>Disconnect</button>
          <span className="muted small">drops its links; it rejoins by itself</span>
        </div>
        <div className="fault-row">
          <button className="btn" disabled={off} onClick={() => act('Slow down', { action: 'slow', peer: target, factor }, `${peerName} slowed ${factor}×`)}>Slow down</button>
          <label className="inline-num">by <input type="number" min={1} max={100} value={factor} onChange={(e) => setFactor(Math.min(100, Math.max(1, Number(e.target.value) || 1)))} aria-label="Slow-down factor" /> ×</label>
        </div>
        <div className="fault-row">
          <button className="btn" disabled={off} onClick={() => act('Add latency', { action: 'latency', peer: target, ms: latency }, `${peerName}: +${latency} ms latency`)}>Add latency</button>
          <label className="inline-num"><input type="number" min={0} max={60000} step={100} value={latency} onChange={(e) => setLatency(Math.min(60000, Math.max(0, Number(e.target.value) || 0)))} aria-label="Latency in milliseconds" /> ms</label>
        </div>
        <div className="fault-row">
          <button className="btn" disabled={off} onClick={() => act('Restore', { action: 'slow', peer: target, factor: 1 }, `${peerName} back to full speed`)}>Restore speed</button>
          <button className="btn" disabled={off} onClick={() => act('Restore', { action: 'latency', peer: target, ms: 0 }, `${peerName}: latency removed`)}>Remove latency</button>
        </div>
      </div>
    </div>
  )
}
