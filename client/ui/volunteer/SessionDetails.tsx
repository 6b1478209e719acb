import type { SessionSnapshot } from '../../session/types'
import { fmtNum } from '../format'

export function NeighboursCard({ snapshot: s }: { snapshot: SessionSnapshot }) {
  return (
    <div className="card">
      <h2>Neighbours</h2>
      {s.neighbors.length ? (
        <ul className="chips" aria-label="Neighbours">
          {s.neighbors.map((n) => <li key={n} className="chip">{n.slice(0, 8)}</li>)}
        </ul>
      ) : (
        <p className="muted">No direct neighbours yet{s.stage === 'training' ? ' — training alone until someone joins.' : '.'}</p>
      )}
      {s.consensus !== null ? <p className="small">Distance of this model from the neighbours’ average: <strong>{fmtNum(s.consensus, 4)}</strong></p> : null}
      {s.self ? <p className="muted small">This tab is <code>{s.self.slice(0, 8)}</code>.</p> : null}
    </div>
  )
}

/** The session's last dozen events, newest first. */
export function ActivityLog({ log }: { log: string[] }) {
  return (
    <div className="card">
      <h2>Activity</h2>
      <ol className="log" aria-label="Event log" aria-live="off">
        {log.length ? log.slice(-12).reverse().map((line, i) => <li key={`${log.length - i}`}>{line}</li>) : <li className="muted">Nothing yet.</li>}
      </ol>
    </div>
  )
}
