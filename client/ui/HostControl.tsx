import { useEffect, useState } from 'react'
import { DivergedBanner } from './DivergedBanner'
import { ALGORITHM_DESCRIPTORS } from '../../shared/algorithms/descriptors'
import { ALGORITHMS, defaultConfig, type AlgorithmName } from '../../shared/config'
import { control, hostTokens, joinUrlFor, type ApiRoom, type ControlAction } from './api'
import { useNow, useRoom, useTitle } from './hooks'
import { KpiRow, RoomMissing } from './DashboardPage'
import { Link } from './nav'
import { PeerTable } from './PeerTable'
import { QrCode } from './QrCode'
import { TopologyGraph } from './TopologyGraph'
import { peerLabel } from './format'

/** `/host?room=X`: join code, QR, links, and every host control (needs this room's host token). */
export function HostControl({ room }: { room: string }) {
  const { data, error, status } = useRoom(room)
  const [token, setToken] = useState<string | null>(() => hostTokens.get(room))
  const now = useNow()
  useTitle(`Host ${room} · tabswarm`)
  if (!data) return <RoomMissing room={room} error={error} status={status} />
  const code = data.code ?? data.room
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
        <Controls room={data} token={token} now={data.now ?? now} onForget={() => setToken(null)} />
      ) : (
        <TokenPrompt room={room} onToken={(t) => { hostTokens.set(room, t); setToken(t) }} />
      )}

      <div className="card">
        <div className="card-head"><h2>Swarm</h2><span className="muted">{data.peers.length} peers</span></div>
        <TopologyGraph peers={data.peers} ps={data.roles?.ps ?? null} now={data.now ?? now} />
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

type Notice = { kind: 'ok' | 'error'; text: string } | null

function Controls({ room, token, now, onForget }: { room: ApiRoom; token: string; now: number; onForget: () => void }) {
  const [notice, setNotice] = useState<Notice>(null)
  const [busy, setBusy] = useState<string | null>(null)
  const others = ALGORITHMS.filter((a) => a !== room.config.algorithm)
  const [nextAlgo, setNextAlgo] = useState<AlgorithmName>(others[0])
  const [target, setTarget] = useState<string>('')
  const [factor, setFactor] = useState(4)
  const [latency, setLatency] = useState(500)
  // Start (first time) vs Resume: has this run trained at all yet?
  const started = room.checkpointStep != null || room.peers.some((p) => (p.step ?? 0) > 0)
  const loading = room.joining?.filter((j) => !j.away).length ?? 0

  useEffect(() => {
    if (notice?.kind !== 'ok') return
    const t = setTimeout(() => setNotice(null), 3000)
    return () => clearTimeout(t)
  }, [notice])
  useEffect(() => {
    if (target && !room.peers.some((p) => p.id === target)) setTarget('')
  }, [room.peers, target])

  const act = async (label: string, body: ControlAction, done: string) => {
    setBusy(label)
    try {
      await control(room.room, token, body)
      setNotice({ kind: 'ok', text: done })
    } catch (e) {
      setNotice({ kind: 'error', text: `${label} failed: ${e instanceof Error ? e.message : String(e)}` })
    } finally {
      setBusy(null)
    }
  }
  const newRun = () => {
    const next = ALGORITHM_DESCRIPTORS[nextAlgo]
    const base = defaultConfig(nextAlgo)
    const keep = { dataset: room.config.dataset, model: room.config.model, partition: room.config.partition, batchSize: room.config.batchSize, totalSteps: room.config.totalSteps, seed: room.config.seed }
    // The room's topology when the next algorithm accepts it, else the next algorithm's default.
    const topology = next.topologies.includes(room.config.topology) ? room.config.topology : next.defaultTopology
    void act('New run', { action: 'new-run', config: { ...base, ...keep, topology, algorithm: nextAlgo } }, `Run ${(room.run ?? 0) + 1} started with ${next.title}`)
  }
  // After a divergence: the same run again with a third of the learning rate (the banner's advice).
  const lowerLr = +(room.config.lr / 3).toPrecision(2)
  const retryLowerLr = () =>
    void act('New run', { action: 'new-run', config: { ...room.config, lr: lowerLr } }, `Run ${(room.run ?? 0) + 1} started with learning rate ${lowerLr}`)
  const peer = room.peers.find((p) => p.id === target)
  const peerName = peer ? peerLabel(peer) : ''

  return (
    <>
      <div className="notice-slot" aria-live="polite">
        {notice ? <p className={`banner ${notice.kind === 'ok' ? 'ok' : 'error'}`} role={notice.kind === 'error' ? 'alert' : 'status'}>{notice.text}</p> : null}
      </div>
      <div className="control-grid">
        <div className="card">
          <h2>Run</h2>
          <DivergedBanner room={room} action={
            <button className="btn primary" disabled={!!busy} onClick={retryLowerLr}>New run with learning rate {lowerLr}</button>
          } />
          <div className="btn-row">
            {room.paused && !started
              ? <button className="btn primary" disabled={!!busy} onClick={() => act('Start', { action: 'start' }, 'Training started')}>Start</button>
              : room.paused
                ? <button className="btn primary" disabled={!!busy} onClick={() => act('Resume', { action: 'resume' }, 'Training resumed')}>Resume</button>
                : <button className="btn" disabled={!!busy} onClick={() => act('Pause', { action: 'pause' }, 'Training paused')}>Pause</button>}
            <button className="btn danger" disabled={!!busy} onClick={() => { if (window.confirm('Start this run over from random weights? (The current run stays in the history for comparison.)')) void act('Reset', { action: 'reset' }, 'Run restarted from random weights') }}>Reset</button>
          </div>
          <p className="muted small" role="status">
            {room.paused && !started
              ? `Waiting for your Start: ${room.peers.length} ${room.peers.length === 1 ? 'student is' : 'students are'} ready${loading ? `, ${loading} still loading` : ''}.`
              : room.diverged ? 'Stopped: the run diverged.' : room.paused ? 'Paused: every tab stops at its next step.' : 'Training.'}
          </p>
          <h3>Compare with another algorithm</h3>
          <div className="inline-form">
            <label className="field grow">
              <span>Next run</span>
              <select aria-label="Next run" value={nextAlgo} onChange={(e) => setNextAlgo(e.target.value as AlgorithmName)}>
                {others.map((a) => <option key={a} value={a}>{ALGORITHM_DESCRIPTORS[a].title}</option>)}
              </select>
            </label>
            <button className="btn primary" disabled={!!busy} onClick={newRun}>Start new run</button>
          </div>
          <p className="muted small">{ALGORITHM_DESCRIPTORS[nextAlgo].blurb} The dashboard overlays both runs.</p>
        </div>

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
              <button className="btn" disabled={!target || !!busy} onClick={() => act('Disconnect', { action: 'disconnect', peer: target }, `${peerName} disconnected`)}>Disconnect</button>
              <span className="muted small">drops its links; it rejoins by itself</span>
            </div>
            <div className="fault-row">
              <button className="btn" disabled={!target || !!busy} onClick={() => act('Slow down', { action: 'slow', peer: target, factor }, `${peerName} slowed ${factor}×`)}>Slow down</button>
              <label className="inline-num">by <input type="number" min={1} max={100} value={factor} onChange={(e) => setFactor(Math.min(100, Math.max(1, Number(e.target.value) || 1)))} aria-label="Slow-down factor" /> ×</label>
            </div>
            <div className="fault-row">
              <button className="btn" disabled={!target || !!busy} onClick={() => act('Add latency', { action: 'latency', peer: target, ms: latency }, `${peerName}: +${latency} ms latency`)}>Add latency</button>
              <label className="inline-num"><input type="number" min={0} max={60000} step={100} value={latency} onChange={(e) => setLatency(Math.min(60000, Math.max(0, Number(e.target.value) || 0)))} aria-label="Latency in milliseconds" /> ms</label>
            </div>
            <div className="fault-row">
              <button className="btn" disabled={!target || !!busy} onClick={() => act('Restore', { action: 'slow', peer: target, factor: 1 }, `${peerName} back to full speed`)}>Restore speed</button>
              <button className="btn" disabled={!target || !!busy} onClick={() => act('Restore', { action: 'latency', peer: target, ms: 0 }, `${peerName}: latency removed`)}>Remove latency</button>
            </div>
          </div>
        </div>
      </div>

      <div className="card">
        <div className="card-head"><h2>Peers</h2><span className="muted">remove a peer to send it out of the room</span></div>
        <PeerTable
          peers={room.peers}
          now={now}
          actions={(p) => (
            <button className="btn small danger" disabled={!!busy} onClick={() => act('Remove', { action: 'kick', peer: p.id }, `${peerLabel(p)} removed`)} aria-label={`Remove ${peerLabel(p)}`}>Remove</button>
          )}
        />
      </div>

      <details className="card slim">
        <summary>Host key (to control this room from another device)</summary>
        <div className="join-link"><code>{token}</code></div>
        <button className="btn small" onClick={() => { onForget() }}>Lock controls on this page</button>
      </details>
    </>
  )
}
