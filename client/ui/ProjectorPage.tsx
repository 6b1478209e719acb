import type { CSSProperties } from 'react'
import { ALGORITHM_INFO } from '../../shared/config'
import { joinUrlFor } from './api'
import { runSeries, SeriesChart } from './Charts'
import { useNow, useTitle } from './hooks'
import { useRoomFeed } from './room-feed'
import { KpiRow, ProgressCard, RoomMissing } from './DashboardPage'
import { LocalOnlyWarning } from './HostControl'
import { QrCode } from './QrCode'
import { leaderboard, useRuns, type LeaderboardEntry } from './swarm'
import { fmtCompact, fmtPct, peerLabel } from './format'
import { TopologyGraph } from './TopologyGraph'

/**
 * `/projector/CODE`: the classroom screen. Everything is big enough to read from the back row:
 * how to join (code, short link, QR), the swarm, and accuracy rising.
 */
export function ProjectorPage({ room }: { room: string }) {
  const { data, history, error, status, skewMs } = useRoomFeed(room, { history: true })
  // The server's clock: a pushed view is only as new as the last change, "last seen" keeps counting.
  const now = useNow() + skewMs
  const runs = useRuns(data, history)
  useTitle(`Join ${room} · tabswarm`)
  if (!data) return <main className="content"><RoomMissing room={room} error={error} status={status} /></main>
  const code = data.code ?? data.room
  const url = joinUrlFor(code, data.joinUrl)
  const shortUrl = url.replace(/^https?:\/\//, '')
  // What students type: the public origin's host, not necessarily this page's.
  const host = (() => {
    try {
      return new URL(url).host
    } catch {
      return window.location.host
    }
  })()
  const info = ALGORITHM_INFO[data.config.algorithm]
  const current = runs.filter((r) => r.run === (data.run ?? 0))
  const leaders = leaderboard(data).entries.slice(0, PROJECTOR_LEADERS)
  return (
    <div className="projector">
      <aside className="proj-join">
        <div className="proj-brand">tabswarm</div>
        <div className="proj-step">Open</div>
        <div className="proj-url" style={{ ['--len' as string]: Math.max(10, host.length) } as CSSProperties}>{host}</div>
        <div className="proj-step">and enter</div>
        <div className="proj-code" style={{ ['--len' as string]: Math.max(4, code.length) } as CSSProperties} aria-label={`Join code ${code}`}>{code}</div>
        <QrCode text={url} size={300} label={`QR code to join room ${code}`} />
        <div className="proj-small">{shortUrl}</div>
        {data.localOnly ? <LocalOnlyWarning url={url} compact /> : null}
      </aside>
      <section className="proj-main">
        <header className="proj-head">
          <div>
            <h1>{info?.title ?? data.config.algorithm}</h1>
            <p>{info?.blurb}</p>
          </div>
          {data.paused ? <span className="tag warn big-tag">paused</span> : null}
        </header>
        {error ? <p className="banner warn">Reconnecting to the server…</p> : null}
        <KpiRow room={data} big />
        <ProgressCard room={data} big />
        {/* A third column for the leaderboard: the projector has no room below the chart. */}
        <div className="proj-body" style={leaders.length ? { gridTemplateColumns: '1fr 1.3fr 0.75fr' } : undefined}>
          <div className="card proj-topo">
            <TopologyGraph peers={data.peers} ps={data.roles?.ps ?? null} now={now} big showLegend={false} />
          </div>
          <div className="card proj-chart">
            <h2>Test accuracy of the swarm</h2>
            <p className="muted" style={{ margin: '-0.5rem 0 0.5rem', fontSize: '1.05rem' }}>How often the volunteers' models (median) recognize new images, over time since the run started</p>
            <SeriesChart series={runSeries(current.length ? current : runs, 'accuracy', 'time')} x="time" y="accuracy" height={440} big legend="always" />
          </div>
          <Leaderboard entries={leaders} />
        </div>
      </section>
    </div>
  )
}

/** The projector's leaderboard length: ten rows stay readable from the back of a classroom. */
export const PROJECTOR_LEADERS = 10

/** Top volunteers by training samples contributed to this run, with their share of it. */
function Leaderboard({ entries }: { entries: LeaderboardEntry[] }) {
  if (!entries.length) return null
  return (
    <div className="card proj-leaders" data-testid="leaderboard">
      <h2 style={{ fontSize: '1.6rem', marginBottom: '0.75rem' }}>Top contributors</h2>
      <ol style={{ fontSize: '1.25rem', margin: 0, paddingLeft: '1.8rem' }}>
        {entries.map((e) => (
          <li key={e.id} style={{ padding: '0.2rem 0' }}>
            <strong>{peerLabel(e)}</strong>
            <div className="muted" style={{ fontSize: '1rem' }}>{fmtCompact(e.samples)} samples · {fmtPct(e.share, 0)}</div>
          </li>
        ))}
      </ol>
    </div>
  )
}
