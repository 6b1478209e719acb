import { useState, type ReactNode } from 'react'
import { DivergedBanner } from './DivergedBanner'
import { ALGORITHM_INFO } from '../../shared/config'
import { roomPath, type ApiRoom, type EvictionRecord, type HistoryRun } from './api'
import { runSeries, SeriesChart, type XKind } from './Charts'
import { useNow, useTitle } from './hooks'
import { useRoomFeed } from './room-feed'
import { PeerTable } from './PeerTable'
import { constantLrs, leaderboard, lrVaries, summarize, useRuns } from './swarm'
import { RunProgress, useRunProgress } from './progress'
import { TopologyGraph } from './TopologyGraph'
import { Link } from './nav'
import { fmtAgo, fmtBytes, fmtCompact, fmtInt, fmtNum, fmtPct } from './format'

/** Spectator dashboard `/room/CODE`: topology, charts, run comparison, per-peer table, exports. */
export function DashboardPage({ room }: { room: string }) {
  const { data, history, error, status, skewMs } = useRoomFeed(room, { history: true })
  // The server's clock: a pushed view is only as new as the last change, "last seen" keeps counting.
  const now = useNow() + skewMs
  const runs = useRuns(data, history)
  useTitle(`${room} · live dashboard · tabswarm`)

  if (!data) {
    return <RoomMissing room={room} error={error} status={status} />
  }
  return (
    <section className="dashboard">
      <RoomHeader room={data} />
      {error ? <p className="banner warn" role="status">Lost contact with the server ({error}); showing the last known state.</p> : null}
      <DivergedBanner room={data} />
      <KpiRow room={data} />
      <ProgressCard room={data} />
      <div className="dash-grid">
        <div className="card topo-card">
          <div className="card-head">
            <h2>Swarm</h2>
            <span className="muted">{data.config.topology} topology</span>
          </div>
          <TopologyGraph peers={data.peers} ps={data.roles?.ps ?? null} now={now} />
        </div>
        <ChartsPanel runs={runs} currentRun={data.run ?? 0} />
      </div>
      <div className="card">
        <div className="card-head">
          <h2>Peers</h2>
          <span className="muted">click a column to sort</span>
        </div>
        <PeerTable peers={data.peers} now={now} roles={data.roles} contribution={leaderboard(data).entries} />
      </div>
      <EvictionList evictions={data.evictions ?? []} now={now} />
      <ExportBar room={data.room} checkpointStep={data.checkpointStep ?? null} origin={data.publicUrl} />
    </section>
  )
}

export function RoomMissing({ room, error, status }: { room: string; error: string | null; status: number | null }) {
  if (status === 404) {
    return (
      <div className="card empty-state">
        <h1>Room “{room}” not found</h1>
        <p className="muted">Check the code, or <Link to="/host">host a new room</Link>.</p>
      </div>
    )
  }
  return (
    <div className="card empty-state" aria-busy={!error}>
      <h1>{error ? 'Cannot reach the server' : 'Loading room…'}</h1>
      {error ? <p className="muted">{error}. Retrying…</p> : <div className="spinner" aria-hidden="true" />}
    </div>
  )
}

export function RoomHeader({ room, extra }: { room: ApiRoom; extra?: ReactNode }) {
  const info = ALGORITHM_INFO[room.config.algorithm]
  return (
    <div className="room-header">
      <div>
        <div className="eyebrow">Room {room.code && room.code !== room.room ? <span className="muted">({room.room})</span> : null}</div>
        <h1 className="room-code">{room.code ?? room.room}</h1>
      </div>
      <div className="room-meta">
        <div className="algo-title">{info?.title ?? room.config.algorithm}{room.run !== undefined ? <span className="tag">run {room.run}</span> : null}{room.diverged ? <span className="tag bad">diverged</span> : room.paused ? <span className="tag warn">paused</span> : null}</div>
        <div className="muted">{room.config.dataset} · {room.config.model} · {room.config.partition} · batch {room.config.batchSize}</div>
      </div>
      <div className="room-links">
        {extra}
        <Link to={`/projector/${encodeURIComponent(room.code ?? room.room)}`} className="btn" newTab>Projector view</Link>
      </div>
    </div>
  )
}

export function KpiRow({ room, big = false }: { room: ApiRoom; big?: boolean }) {
  const s = summarize(room)
  return (
    <div className={`kpis${big ? ' big' : ''}`}>
      <Kpi label="Test accuracy" value={fmtPct(s.accuracy)} accent />
      {!big ? <Kpi label="Loss" value={fmtNum(s.loss, 3)} /> : null}
      <Kpi label="Peers" value={peersText(s.peers, room.joining ?? [])} />
      <Kpi label="Step" value={fmtInt(s.globalStep)} />
      {!big ? <Kpi label="Steps/s (all)" value={fmtNum(s.stepsPerSec, 1)} /> : null}
      {!big ? <Kpi label="Samples/s" value={fmtCompact(s.samplesPerSec)} /> : null}
      {!big ? <Kpi label="Samples" value={fmtCompact(s.samples)} /> : null}
      <Kpi label="Data exchanged" value={fmtBytes(s.bytes)} />
    </div>
  )
}

/** "3", "3 +1 joining", "3 · 2 away", "3 +1 joining · 2 away": away = paused or hidden tabs out of the roster. */
function peersText(inRoster: number, joining: NonNullable<ApiRoom['joining']>): string {
  const away = joining.filter((j) => j.away).length
  const loading = joining.length - away
  return `${inRoster}${loading ? ` +${loading} joining` : ''}${away ? ` · ${away} away` : ''}`
}

/** Progress toward the run's totalSteps, with an ETA from the recent rate (client/ui/progress.tsx). */
export function ProgressCard({ room, big = false }: { room: ApiRoom; big?: boolean }) {
  const progress = useRunProgress(summarize(room).globalStep, room.config.totalSteps, room.run ?? 0)
  return <div className="card slim"><RunProgress progress={progress} big={big} /></div>
}

function Kpi({ label, value, accent }: { label: string; value: string; accent?: boolean }) {
  return (
    <div className={`kpi${accent ? ' accent' : ''}`} data-testid={`kpi-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')}`}>
      <div className="kpi-value">{value}</div>
      <div className="kpi-label">{label}</div>
    </div>
  )
}

const X_OPTIONS: { key: XKind; label: string }[] = [
  { key: 'time', label: 'Time' },
  { key: 'bytes', label: 'Bytes sent' },
  { key: 'step', label: 'Step' },
]

function ChartsPanel({ runs, currentRun }: { runs: HistoryRun[]; currentRun: number }) {
  const [x, setX] = useState<XKind>('time')
  const [compare, setCompare] = useState(true)
  const shown = compare ? runs : runs.filter((r) => r.run === currentRun)
  const hasH = shown.some((r) => r.points.some((p) => typeof p.h === 'number'))
  const hasConsensus = shown.some((r) => r.points.some((p) => typeof p.consensus === 'number'))
  return (
    <div className="card charts-card">
      <div className="card-head wrap">
        <h2>Learning</h2>
        <div className="chart-controls">
          <div className="segmented" role="group" aria-label="Horizontal axis">
            {X_OPTIONS.map((o) => (
              <button key={o.key} type="button" aria-pressed={x === o.key} onClick={() => setX(o.key)}>{o.label}</button>
            ))}
          </div>
          {runs.length > 1 ? (
            <label className="toggle">
              <input type="checkbox" checked={compare} onChange={(e) => setCompare(e.target.checked)} />
              Compare {runs.length} runs
            </label>
          ) : null}
        </div>
      </div>
      <div className="chart-grid">
        <ChartBox title="Test accuracy"><SeriesChart series={runSeries(shown, 'accuracy', x)} x={x} y="accuracy" /></ChartBox>
        <ChartBox title="Training loss"><SeriesChart series={runSeries(shown, 'loss', x)} x={x} y="loss" /></ChartBox>
        <ChartBox title="Consensus distance" hint="how far the peers’ models are from their average">
          {hasConsensus ? <SeriesChart series={runSeries(shown, 'consensus', x)} x={x} y="consensus" /> : <div className="chart-empty">Not reported by this algorithm yet</div>}
        </ChartBox>
        {lrVaries(shown) || hasH ? (
          <ChartBox title={hasH ? 'Learning rate and H' : 'Learning rate'}>
            <SeriesChart series={runSeries(shown, 'lr', x)} x={x} y="lr" height={hasH ? 150 : 260} />
            {hasH ? <SeriesChart series={runSeries(shown, 'h', x).map((s) => ({ ...s, dashed: true }))} x={x} y="h" height={110} legend={false} /> : null}
          </ChartBox>
        ) : null}
      </div>
      {!lrVaries(shown) && !hasH ? <ConstantLr runs={shown} /> : null}
    </div>
  )
}

/** A constant learning rate is one line, not a flat chart ("learning rate 0.05 (constant)"). */
function ConstantLr({ runs }: { runs: HistoryRun[] }) {
  const lrs = constantLrs(runs)
  if (!lrs.length) return null
  const same = lrs.every((l) => l.lr === lrs[0].lr)
  return (
    <p className="muted small" data-testid="constant-lr">
      {same
        ? `learning rate ${fmtLr(lrs[0].lr)} (constant)`
        : `learning rate (constant): ${lrs.map((l) => `run ${l.run} ${fmtLr(l.lr)}`).join(', ')}`}
    </p>
  )
}

const fmtLr = (v: number) => String(+v.toPrecision(3))

function ChartBox({ title, hint, children }: { title: string; hint?: string; children: ReactNode }) {
  return (
    <div className="chart-box">
      <h3>{title}{hint ? <span className="muted small"> · {hint}</span> : null}</h3>
      {children}
    </div>
  )
}

export function ExportBar({ room, checkpointStep, origin }: { room: string; checkpointStep: number | null; origin?: string }) {
  const base = roomPath(room)
  return (
    <div className="card export-bar">
      <div>
        <h2>Export</h2>
        <p className="muted small">Run history for your own analysis; the latest trained model checkpoint{checkpointStep !== null ? ` (checkpoint at step ${checkpointStep})` : ''}.</p>
      </div>
      <div className="btn-row">
        <a className="btn" href={`${base}/history?format=csv`} download>History (CSV)</a>
        <a className="btn" href={`${base}/history?format=json`} download>History (JSON)</a>
        <a className="btn primary" href={`${base}/model?format=tfjs`} download>Download model (TensorFlow.js)</a>
      </div>
      <ModelSnippet room={room} origin={origin} />
    </div>
  )
}

/**
 * How to use the trained model from another page (a notebook, a CodePen): the model route is
 * the standard model.json + weights pair (signaling-server/http-api.ts), readable cross-origin.
 */
function ModelSnippet({ room, origin }: { room: string; origin?: string }) {
  const [copied, setCopied] = useState(false)
  const at = (() => {
    try {
      return new URL(origin ?? window.location.origin).origin
    } catch {
      return window.location.origin
    }
  })()
  const code = `const model = await tf.loadLayersModel('${at}${roomPath(room)}/model.json')`
  return (
    <div className="model-snippet">
      <p className="muted small">Load the latest checkpoint in TensorFlow.js from any page:</p>
      <div className="join-link">
        <code data-testid="model-snippet">{code}</code>
        <button
          type="button"
          className="btn small"
          onClick={() => {
            void navigator.clipboard?.writeText(code).then(() => {
              setCopied(true)
              setTimeout(() => setCopied(false), 1500)
            }, () => undefined)
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
    </div>
  )
}

/**
 * Peers the swarm removed because their neighbours reported them (poisoned or missing
 * parameters). Shown so a class can see *why* a laptop dropped out, not only that it did.
 */
function EvictionList({ evictions, now }: { evictions: EvictionRecord[]; now: number }) {
  if (evictions.length === 0) return null
  return (
    <div className="card">
      <div className="card-head">
        <h2>Removed by the swarm</h2>
        <span className="muted">their own neighbours reported these peers (or one did and the server saw them go silent); they may rejoin after a cooldown</span>
      </div>
      <ul className="eviction-list">
        {[...evictions].reverse().map((e) => {
          const wait = e.at + e.cooldownMs - now
          return (
            <li key={`${e.peer}-${e.at}`}>
              <strong>{e.name ?? e.peer.slice(0, 6)}</strong> <span className="muted">{fmtAgo(e.at, now)}</span>
              <span> — {e.reason || 'missed deadlines'}</span>
              <span className="muted"> · {e.evidence ?? `reported by ${e.reporters.length}`} · {wait > 0 ? `may rejoin in ${Math.ceil(wait / 1000)} s` : 'may rejoin now'}</span>
            </li>
          )
        })}
      </ul>
    </div>
  )
}
