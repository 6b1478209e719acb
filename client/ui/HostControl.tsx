import { useState } from 'react'
import { ALGORITHM_DESCRIPTORS } from '../../shared/algorithms/descriptors'
import { deleteRoom, hostTokens, joinUrlFor, type ApiRoom } from './api'
import { useNow, useTitle } from './hooks'
import { useRoomFeed } from './room-feed'
import { KpiRow, RoomMissing } from './DashboardPage'
import { Link, navigate } from './nav'
import { PeerTable } from './PeerTable'
import { leaderboard } from './swarm'
import { QrCode } from './QrCode'
import { TopologyGraph } from './TopologyGraph'
import { peerLabel } from './format'
import { CheckpointsCard } from './host/CheckpointsCard'
import { FaultInjectionCard } from './host/FaultInjectionCard'
import { RolesCard } from './host/RolesCard'
import { RunCard } from './host/RunCard'
import { useHostActions, type HostAct, type HostRun } from './host/useHostActions'

/** `/host?room=X`: join code, QR, links, and every host control (needs this room's host token). */
export function HostControl({ room }: { room: string }) {
  const { data, error, status, skewMs } = useRoomFeed(room)
  const [token, setToken] = useState<string | null>(() => hostTokens.get(room))
  // The server's clock: a pushed view is only as new as the last change, "last seen" keeps counting.
  const now = useNow() + skewMs
  useTitle(`Host ${room} · tabswarm`)
  if (!data) return <RoomMissing room={room} error={error} status={status} />
  const code = data.code ?? data.room
  // The room is gone: forget its host key under every name this browser kept it by, back to the create form.
  const onDeleted = () => {
    for (const k of new Set([room, data.room, code])) hostTokens.remove(k)
    setToken(null)
    navigate(`/host?deleted=${encodeURIComponent(code)}`, { replace: true })
  }
  const joinUrl = joinUrlFor(code, data.joinUrl)
  return (
    <section className="host-control">
      {data.localOnly ? <LocalOnlyWarning url={joinUrl} /> : null}
      <div className="join-panel card">
        <div className="join-panel-text">
          <div className="eyebrow">Join code</div>
          <div className="big-code" data-testid="join-code">{code}</div>
          <JoinLink url={joinUrl} />
          <div className="btn-row">
            <Link to={`/projector/${encodeURIComponent(code)}`} className="btn primary" newTab>Open projector view</Link>
            <Link to={`/room/${encodeURIComponent(code)}`} className="btn" newTab>Live dashboard</Link>
          </div>
          <p className="muted small">
            {ALGORITHM_DESCRIPTORS[data.config.algorithm]?.title} · {data.config.topology} · {data.config.dataset} · run {data.run ?? 0}
            {data.paused ? ' · paused' : ''}
          </p>
        </div>
        <QrCode text={joinUrl} size={240} label={`QR code to join room ${code}`} />
      </div>

      {error ? <p className="banner warn" role="status">Lost contact with the server ({error}); retrying.</p> : null}
      <KpiRow room={data} />

      {token ? (
        <Controls room={data} token={token} now={now} onForget={() => setToken(null)} onDeleted={onDeleted} />
      ) : (
        <TokenPrompt room={room} onToken={(t) => { hostTokens.set(room, t); setToken(t) }} />
      )}

      <div className="card">
        <div className="card-head"><h2>Swarm</h2><span className="muted">{data.peers.length} peers</span></div>
        <TopologyGraph peers={data.peers} ps={data.roles?.ps ?? null} now={now} />
      </div>
    </section>
  )
}

/**
 * The server knows no address other machines can reach (opened on localhost, no LAN address,
 * no PUBLIC_URL): a QR code of http://localhost… sends every student's phone to itself.
 */
export function LocalOnlyWarning({ url, compact = false }: { url: string; compact?: boolean }) {
  const host = (() => {
    try {
      return new URL(url).host
    } catch {
      return url
    }
  })()
  return (
    <div className={`banner warn${compact ? ' compact' : ''}`} role="alert" data-testid="local-only-warning">
      <strong>Students cannot open {host}.</strong>{' '}
      {compact
        ? 'This address only works on this computer.'
        : <>It only works on this computer. Start the server with <code>HOST=0.0.0.0</code> on the classroom network (the join link then uses its LAN address), or set <code>PUBLIC_URL</code> to the address students can reach.</>}
    </div>
  )
}

function JoinLink({ url }: { url: string }) {
  const [copied, setCopied] = useState(false)
  return (
    <div className="join-link">
      <code>{url}</code>
      <button
        type="button"
        className="btn small"
        onClick={() => {
          void navigator.clipboard?.writeText(url).then(() => {
            setCopied(true)
            setTimeout(() => setCopied(false), 1500)
          }, () => undefined)
        }}
      >
        {copied ? 'Copied' : 'Copy link'}
      </button>
    </div>
  )
}

function TokenPrompt({ room, onToken }: { room: string; onToken: (t: string) => void }) {
  const [t, setT] = useState('')
  return (
    <form className="card" onSubmit={(e) => { e.preventDefault(); if (t.trim()) onToken(t.trim()) }} aria-label="Host key">
      <h2>Host controls are locked</h2>
      <p className="muted">This browser does not hold the host key for <strong>{room}</strong>. Open this page on the browser that created the room, or paste the host key.</p>
      <div className="inline-form">
        <label className="field grow">
          <span>Host key</span>
          <input aria-label="Host key" value={t} onChange={(e) => setT(e.target.value)} autoComplete="off" spellCheck={false} />
        </label>
        <button className="btn primary" type="submit" disabled={!t.trim()}>Unlock</button>
      </div>
    </form>
  )
}

function Controls({ room, token, now, onForget, onDeleted }: { room: ApiRoom; token: string; now: number; onForget: () => void; onDeleted: () => void }) {
  const { notice, busy, act, run } = useHostActions(room.room, token)
  return (
    <>
      <div className="notice-slot" aria-live="polite">
        {notice ? <p className={`banner ${notice.kind === 'ok' ? 'ok' : 'error'}`} role={notice.kind === 'error' ? 'alert' : 'status'}>{notice.text}</p> : null}
      </div>
      <div className="control-grid">
        <RunCard room={room} busy={busy} act={act} />
        <FaultInjectionCard room={room} busy={busy} act={act} />
        <RolesCard room={room} busy={busy} act={act} />
        <CheckpointsCard room={room} now={now} busy={busy} act={act} />
      </div>
      <PeersCard room={room} now={now} busy={busy} act={act} />
      <HostKeyDetails token={token} onForget={onForget} />
      <DeleteRoom room={room} token={token} busy={busy} run={run} onDeleted={onDeleted} />
    </>
  )
}

function PeersCard({ room, now, busy, act }: { room: ApiRoom; now: number; busy: boolean; act: HostAct }) {
  return (
    <div className="card">
      <div className="card-head"><h2>Peers</h2><span className="muted">remove a peer to send it out of the room</span></div>
      <PeerTable
        peers={room.peers}
        now={now}
        roles={room.roles}
        contribution={leaderboard(room).entries}
        actions={(p) => (
          <button className="btn small danger" disabled={busy} onClick={() => act('Remove', { action: 'kick', peer: p.id }, `${peerLabel(p)} removed`)} aria-label={`Remove ${peerLabel(p)}`}>Remove</button>
        )}
      />
    </div>
  )
}

function HostKeyDetails({ token, onForget }: { token: string; onForget: () => void }) {
  return (
    <details className="card slim">
      <summary>Host key (to control this room from another device)</summary>
      <div className="join-link"><code>{token}</code></div>
      <button className="btn small" onClick={() => { onForget() }}>Lock controls on this page</button>
    </details>
  )
}

/** Deletes the room for good, after a confirm: everyone is disconnected, its history and checkpoints go. */
function DeleteRoom({ room, token, busy, run, onDeleted }: { room: ApiRoom; token: string; busy: boolean; run: HostRun; onDeleted: () => void }) {
  const code = room.code ?? room.room
  const del = async () => {
    if (!window.confirm(`Delete room ${code}? Everyone in it is disconnected, and its history and checkpoints are gone. This cannot be undone.`)) return
    if (await run('Delete room', () => deleteRoom(room.room, token))) onDeleted()
  }
  return (
    <div className="card slim">
      <div className="btn-row">
        <button className="btn danger" disabled={busy} onClick={() => void del()}>Delete room</button>
        <span className="muted small">Disconnects everyone and deletes the room with its history and checkpoints.</span>
      </div>
    </div>
  )
}
