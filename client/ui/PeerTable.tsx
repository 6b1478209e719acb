import { useState, type ReactNode } from 'react'
import { describeConnectivity, summarizeConnectivity, type ConnectivitySummary } from '../mesh/connectivity'
import type { ApiPeer } from './api'
import { backendColor, faultTags, fmtBytes, fmtCompact, fmtNum, fmtPct, peerLabel } from './format'
import { isStalled } from './TopologyGraph'
import { CAPABILITY_TAG } from './volunteer/CapabilityNotice'

/** The diagnosis's codes worth a tag: an insecure context already explains the missing isolation. */
function capabilityCodes(codes: readonly string[] | undefined): string[] {
  const c = codes ?? []
  return c.filter((x) => x !== 'not-isolated' || !c.includes('insecure-context')).slice(0, 3)
}

type Col = 'name' | 'backend' | 'stage' | 'stepsPerSec' | 'step' | 'staleness' | 'loss' | 'accuracy' | 'samples' | 'share' | 'bytesSent' | 'bytesReceived' | 'links'

const COLS: { key: Col; label: string; numeric?: boolean }[] = [
  { key: 'name', label: 'Peer' },
  { key: 'backend', label: 'Backend' },
  { key: 'stage', label: 'Stage' },
  { key: 'stepsPerSec', label: 'Steps/s', numeric: true },
  { key: 'step', label: 'Step', numeric: true },
  { key: 'staleness', label: 'Behind', numeric: true },
  { key: 'loss', label: 'Loss', numeric: true },
  { key: 'accuracy', label: 'Accuracy', numeric: true },
  { key: 'samples', label: 'Samples', numeric: true },
  { key: 'share', label: 'Share', numeric: true },
  { key: 'bytesSent', label: 'Sent', numeric: true },
  { key: 'bytesReceived', label: 'Received', numeric: true },
  { key: 'links', label: 'Links', numeric: true },
]

/** Direct and relayed links of a peer and their median RTT, from its report; null when it reports none. */
function connectivity(p: ApiPeer): ConnectivitySummary | null {
  const ice = Object.values(p.links ?? {}).map((l) => l.ice).filter((c) => c !== undefined)
  return ice.length ? summarizeConnectivity(ice) : null
}

/** "1 direct, 1 relayed · 12 ms"; the title says what relayed means. */
function LinksCell({ peer }: { peer: ApiPeer }) {
  const c = connectivity(peer)
  if (!c) return <td className="num" data-testid="peer-links">—</td>
  const rtt = c.medianRttMs === null ? '' : ` · ${fmtNum(c.medianRttMs, c.medianRttMs < 10 ? 1 : 0)} ms`
  return (
    <td className="num" data-testid="peer-links" title="direct: peer to peer; relayed: through a TURN server. Median round-trip time over its links.">
      {describeConnectivity(c) || '—'}{rtt}
    </td>
  )
}

/** Staleness = how many steps a peer is behind the furthest peer (max global step − its step). */
export function globalStep(peers: ApiPeer[]): number {
  return Math.max(0, ...peers.map((p) => Math.max(p.globalStep ?? 0, p.step)))
}

/** A volunteer's training samples this run and their share of the run's (swarm.ts leaderboard). */
export interface Contribution {
  id: string
  samples: number
  share: number
}

function value(p: ApiPeer, c: Col, g: number, credit?: Contribution): string | number {
  switch (c) {
    case 'name': return peerLabel(p).toLowerCase()
    case 'backend': return p.backend ?? ''
    case 'stage': return p.stage ?? ''
    case 'stepsPerSec': return p.stepsPerSec ?? 0
    case 'step': return p.step
    case 'staleness': return g - p.step
    case 'loss': return p.loss ?? Infinity
    case 'accuracy': return p.accuracy ?? -1
    case 'samples': return credit?.samples ?? p.samples ?? 0
    case 'share': return credit?.share ?? 0
    case 'bytesSent': return p.bytesSent
    case 'bytesReceived': return p.bytesReceived
    case 'links': return connectivity(p)?.medianRttMs ?? Infinity
  }
}

/** Who holds the room's roles (ApiRoom['roles']; older servers omit `writer` and `pinned`). */
export interface PeerRoles {
  ps?: string | null
  writer?: string | null
  pinned?: { ps?: string | null; writer?: string | null }
}

export function PeerTable({ peers, now, roles, actions, contribution }: {
  peers: ApiPeer[]; now: number; roles?: PeerRoles; actions?: (p: ApiPeer) => ReactNode
  /** Samples and share per volunteer; without it the columns show the peers' own counters and no share. */
  contribution?: Contribution[]
}) {
  const [sort, setSort] = useState<{ col: Col; dir: 1 | -1 }>({ col: 'name', dir: 1 })
  const g = globalStep(peers)
  const credit = new Map((contribution ?? []).map((c) => [c.id, c]))
  const rows = [...peers].sort((a, b) => {
    const va = value(a, sort.col, g, credit.get(a.id))
    const vb = value(b, sort.col, g, credit.get(b.id))
    return (va < vb ? -1 : va > vb ? 1 : a.id < b.id ? -1 : 1) * sort.dir
  })
  if (!peers.length) return <p className="muted">No peers yet. Share the join code to get started.</p>
  return (
    <div className="table-wrap">
      <table className="peers">
        <thead>
          <tr>
            {COLS.map((c) => (
              <th key={c.key} className={c.numeric ? 'num' : undefined} aria-sort={sort.col === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
                <button type="button" onClick={() => setSort((s) => ({ col: c.key, dir: s.col === c.key ? (s.dir === 1 ? -1 : 1) : c.numeric ? -1 : 1 }))}>
                  {c.label}
                  <span className="sort-mark" aria-hidden="true">{sort.col === c.key ? (sort.dir === 1 ? '▲' : '▼') : ''}</span>
                </button>
              </th>
            ))}
            {actions ? <th><span className="sr-only">Actions</span></th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((p) => {
            const stalled = isStalled(p, now)
            return (
              <tr key={p.id} className={stalled ? 'row-stalled' : undefined}>
                <td>
                  <span className="peer-name">{peerLabel(p)}</span>
                  {p.agent === 'node' ? <span className="tag">node</span> : null}
                  <RoleTags id={p.id} roles={roles} />
                  {p.suspect ? <span className="tag bad">suspect</span> : null}
                  {faultTags(p).map((t) => <span key={t} className="tag warn" data-testid="fault-tag" title="fault injected by the host">{t}</span>)}
                </td>
                <td title={p.backendReason ?? undefined}><span className="dot-inline" style={{ background: backendColor(p.backend) }} />{p.backend ?? '—'}{p.computeThread === 'worker' ? <span className="tag" title="the model trains on a worker thread">worker</span> : null}{capabilityCodes(p.capability).map((c) => { const t = CAPABILITY_TAG[c as keyof typeof CAPABILITY_TAG]; return t ? <span key={c} className="tag warn" data-testid="capability-tag" title={t.help}>{t.label}</span> : null })}</td>
                <td><StageText stage={p.stage === 'error' ? 'error' : stalled ? 'stalled' : p.stage ?? 'training'} /></td>
                <td className="num">{fmtNum(p.stepsPerSec ?? null, 1)}</td>
                <td className="num">{p.step}</td>
                <td className="num">{g - p.step}</td>
                <td className="num">{fmtNum(p.loss, 3)}</td>
                <td className="num">{fmtPct(p.accuracy)}</td>
                <td className="num" data-testid="peer-samples">{fmtCompact(credit.get(p.id)?.samples ?? p.samples ?? null)}</td>
                <td className="num" data-testid="peer-share">{credit.has(p.id) ? fmtPct(credit.get(p.id)!.share, 0) : '—'}</td>
                <td className="num">{fmtBytes(p.bytesSent)}</td>
                <td className="num">{fmtBytes(p.bytesReceived)}</td>
                <LinksCell peer={p} />
                {actions ? <td className="actions">{actions(p)}</td> : null}
              </tr>
            )
          })}
        </tbody>
      </table>
    </div>
  )
}

/** "PS" and "writer" tags on the peers holding those roles; a pin shows in the tooltip. */
function RoleTags({ id, roles }: { id: string; roles?: PeerRoles }) {
  const pinned = (r: 'ps' | 'writer') => (roles?.pinned?.[r] === id ? ', pinned by the host' : '')
  return (
    <>
      {roles?.ps === id ? <span className="tag" data-testid="role-tag" title={`parameter server: every worker pushes its updates here${pinned('ps')}`}>PS</span> : null}
      {roles?.writer === id ? <span className="tag" data-testid="role-tag" title={`checkpoint writer: its model becomes the room checkpoint${pinned('writer')}`}>writer</span> : null}
    </>
  )
}

/** A failed tab stops reporting, so 'error' wins over the staleness-derived 'stalled'. */
function StageText({ stage }: { stage: string }) {
  return <span className={`stage-text stage-${stage}`} data-testid="peer-stage">{stage === 'error' ? 'error ⚠' : stage}</span>
}
