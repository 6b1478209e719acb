import type { CSSProperties } from 'react'
import { ALGORITHM_INFO } from '../../shared/config'
import { joinUrlFor } from './api'
import { runSeries, SeriesChart } from './Charts'
import { useHistory, useNow, useRoom, useTitle } from './hooks'
import { KpiRow, RoomMissing } from './DashboardPage'
import { LocalOnlyWarning } from './HostControl'
import { QrCode } from './QrCode'
import { useRuns } from './swarm'
import { TopologyGraph } from './TopologyGraph'

/**
 * `/projector/CODE`: the classroom screen. Everything is big enough to read from the back row:
 * how to join (code, short link, QR), the swarm, and accuracy rising.
 */
export function ProjectorPage({ room }: { room: string }) {
  const { data, error, status } = useRoom(room)
  const { data: history } = useHistory(room)
  const now = useNow()
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
        <div className="proj-body">
          <div className="card proj-topo">
            <TopologyGraph peers={data.peers} ps={data.roles?.ps ?? null} now={data.now ?? now} big showLegend={false} />
          </div>
          <div className="card proj-chart">
            <h2>Test accuracy</h2>
            <SeriesChart series={runSeries(current.length ? current : runs, 'accuracy', 'time')} x="time" y="accuracy" height={440} big legend={false} />
          </div>
        </div>
      </section>
    </div>
  )
}
