import { useState } from 'react'
import { describeConnectivity } from '../../mesh/connectivity'
import type { LogLine, SessionSnapshot } from '../../session/types'
import { fmtNum, shortId } from '../format'

/** A neighbour as people see it: the name it joined with, else a short id. */
function neighbourLabel(s: SessionSnapshot, id: string): string {
  return s.neighbourNames[id] ?? shortId(id)
}

export function NeighboursCard({ snapshot: s }: { snapshot: SessionSnapshot }) {
  return (
    <div className="card">
      <h2>Neighbours</h2>
      {s.neighbors.length ? (
        <ul className="chips" aria-label="Neighbours">
          {s.neighbors.map((n) => <li key={n} className="chip" title={n}>{neighbourLabel(s, n)}</li>)}
        </ul>
      ) : (
        <p className="muted">No direct neighbours yet{s.stage === 'training' ? ' — training alone until someone joins.' : '.'}</p>
      )}
      {s.consensus !== null ? <p className="small">Distance of this model from the neighbours’ average: <strong>{fmtNum(s.consensus, 4)}</strong></p> : null}
      {s.connectivity && describeConnectivity(s.connectivity) ? (
        <p className="small" data-testid="links-connectivity" title="direct: straight to the other tab; relayed: through a TURN server (slower, but it crosses firewalls)">
          Links: <strong>{describeConnectivity(s.connectivity)}</strong>
          {s.connectivity.medianRttMs !== null ? <span className="muted"> · round trip {fmtNum(s.connectivity.medianRttMs, s.connectivity.medianRttMs < 10 ? 1 : 0)} ms</span> : null}
        </p>
      ) : null}
    </div>
  )
}

/**
 * The session's last dozen events, newest first, in plain words. "Show details" reveals each
 * line's technical account (ids, rounds, measurements); collapsed, it stays in the line's title
 * and hidden text, so a search of the log still finds it.
 */
export function ActivityLog({ log }: { log: LogLine[] }) {
  const [details, setDetails] = useState(false)
  return (
    <div className="card">
      <div className="card-head">
        <h2>Activity</h2>
        <button type="button" className="btn small" aria-pressed={details} onClick={() => setDetails((d) => !d)}>
          {details ? 'Hide details' : 'Show details'}
        </button>
      </div>
      <ol className="log" aria-label="Event log" aria-live="off">
        {log.length ? log.slice(-12).reverse().map((line, i) => (
          <li key={`${log.length - i}`} title={line.detail}>
            <span className="muted">{line.at}</span> {line.text}
            {line.detail && line.detail !== line.text ? <span className="log-detail" hidden={!details}> · {line.detail}</span> : null}
          </li>
        )) : <li className="muted">Nothing yet.</li>}
      </ol>
    </div>
  )
}
