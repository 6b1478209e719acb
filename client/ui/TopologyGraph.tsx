import { useEffect, useMemo, useRef, useState } from 'react'
import type { ApiPeer } from './api'
import { BACKEND_COLORS, backendColor, faultTags, fmtBytes, fmtNum, peerLabel } from './format'

/**
 * The swarm as a graph: a deterministic circular layout in roster order (a ring topology draws
 * as a ring), the parameter server, if any, in the centre. Nodes glide to their new places when
 * peers come and go instead of jumping. Colour = backend, size = steps/s, dashed grey = stalled,
 * red halo = suspected by a neighbour, dashed amber ring + tag above = slowed down or delayed by
 * the host's fault injection. Edge thickness = bytes exchanged on that link.
 */

/** A report older than this marks the peer stalled even if it says it is training. */
const STALE_REPORT_MS = 5000

export function isStalled(p: ApiPeer, now: number): boolean {
  return p.stage === 'stalled' || (typeof p.lastReportAt === 'number' && now - p.lastReportAt > STALE_REPORT_MS)
}

interface Pt {
  x: number
  y: number
}

function layout(peers: ApiPeer[], center: string | null, size: number): Map<string, Pt> {
  const out = new Map<string, Pt>()
  const c = size / 2
  const ring = peers.filter((p) => p.id !== center)
  const r = ring.length <= 1 ? 0 : size * 0.36
  ring.forEach((p, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / ring.length
    out.set(p.id, { x: c + r * Math.cos(a), y: c + r * Math.sin(a) })
  })
  if (center && peers.some((p) => p.id === center)) out.set(center, { x: c, y: c })
  if (ring.length === 1 && center) {
    const only = ring[0]
    out.set(only.id, { x: c, y: c - size * 0.3 })
  }
  return out
}

/** Eases displayed positions toward the layout's targets (≈ 0.5 s), one rAF loop per graph. */
function useGlide(targets: Map<string, Pt>): Map<string, Pt> {
  const [shown, setShown] = useState(targets)
  const shownRef = useRef(targets)
  useEffect(() => {
    let raf = 0
    const tick = () => {
      let moving = false
      const next = new Map<string, Pt>()
      for (const [id, t] of targets) {
        const s = shownRef.current.get(id) ?? t
        const nx = s.x + (t.x - s.x) * 0.15
        const ny = s.y + (t.y - s.y) * 0.15
        const done = Math.abs(nx - t.x) < 0.3 && Math.abs(ny - t.y) < 0.3
        if (!done) moving = true
        next.set(id, done ? t : { x: nx, y: ny })
      }
      shownRef.current = next
      setShown(next)
      if (moving) raf = requestAnimationFrame(tick)
    }
    raf = requestAnimationFrame(tick)
    return () => cancelAnimationFrame(raf)
  }, [targets])
  return shown
}

interface Edge {
  a: string
  b: string
  bytes: number
}

/** One edge per pair of neighbours, however many of the two report it; its traffic is the larger report. */
function collectEdges(peers: ApiPeer[]): Map<string, Edge> {
  const byId = new Map(peers.map((p) => [p.id, p]))
  const edges = new Map<string, Edge>()
  for (const p of peers) {
    for (const n of p.neighbors ?? []) {
      if (!byId.has(n) || n === p.id) continue
      const [a, b] = p.id < n ? [p.id, n] : [n, p.id]
      const key = `${a}|${b}`
      const link = p.links?.[n]
      const bytes = link ? link.sent + link.received : 0
      const e = edges.get(key)
      if (e) e.bytes = Math.max(e.bytes, bytes)
      else edges.set(key, { a, b, bytes })
    }
  }
  return edges
}

export function TopologyGraph({ peers, ps = null, now, big = false, showLegend = true }: {
  peers: ApiPeer[]
  ps?: string | null
  now: number
  big?: boolean
  showLegend?: boolean
}) {
  const size = 600
  const ids = peers.map((p) => p.id).join(',')
  // Re-layout only when the roster changes, not on every poll.
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const targets = useMemo(() => layout(peers, ps, size), [ids, ps])
  const pos = useGlide(targets)

  const edges = collectEdges(peers)
  const maxBytes = Math.max(1, ...[...edges.values()].map((e) => e.bytes))
  const maxRate = Math.max(0.001, ...peers.map((p) => p.stepsPerSec ?? 0))
  const many = peers.length > 16
  const look: NodeLook = { baseR: (many ? 14 : 22) * (big ? 1.15 : 1), labelSize: big ? 22 : 16, showLabel: !many || big, maxRate }

  return (
    <figure className={`topology${big ? ' big' : ''}`} aria-label={`Swarm topology: ${peers.length} peers, ${edges.size} links`}>
      <svg viewBox={`0 0 ${size} ${size}`} role="img" aria-hidden={peers.length === 0}>
        <defs>
          <filter id="soft" x="-50%" y="-50%" width="200%" height="200%">
            <feDropShadow dx="0" dy="2" stdDeviation="3" floodOpacity="0.25" />
          </filter>
        </defs>
        {[...edges.values()].map((e) => {
          const a = pos.get(e.a)
          const b = pos.get(e.b)
          if (!a || !b) return null
          const w = 1.5 + 8 * Math.sqrt(e.bytes / maxBytes)
          return <line key={`${e.a}|${e.b}`} className="edge" x1={a.x} y1={a.y} x2={b.x} y2={b.y} strokeWidth={w}><title>{`${fmtBytes(e.bytes)} exchanged`}</title></line>
        })}
        {peers.map((p) => {
          const at = pos.get(p.id)
          return at ? <PeerNode key={p.id} peer={p} at={at} isPs={p.id === ps} now={now} look={look} /> : null
        })}
        {peers.length === 0 ? <text x={size / 2} y={size / 2} textAnchor="middle" className="empty-text" fontSize={big ? 30 : 22}>No one here yet</text> : null}
      </svg>
      {showLegend ? <TopologyLegend peers={peers} /> : null}
    </figure>
  )
}

/** Sizes shared by every node of one graph: the fastest peer sets the scale. */
interface NodeLook {
  baseR: number
  labelSize: number
  showLabel: boolean
  maxRate: number
}

function PeerNode({ peer: p, at, isPs, now, look }: { peer: ApiPeer; at: Pt; isPs: boolean; now: number; look: NodeLook }) {
  const { baseR, labelSize, maxRate } = look
  const rate = p.stepsPerSec ?? 0
  const r = baseR * (0.7 + 0.6 * Math.sqrt(rate / maxRate))
  const stalled = isStalled(p, now)
  const faults = faultTags(p)
  return (
    <g transform={`translate(${at.x.toFixed(1)} ${at.y.toFixed(1)})`} className={`node${stalled ? ' stalled' : ''}${p.suspect ? ' suspect' : ''}${faults.length ? ' faulted' : ''}`}>
      <title>{`${peerLabel(p)} · ${p.backend ?? 'starting'} · ${fmtNum(rate, 1)} steps/s${p.stage === 'error' ? ' · error' : stalled ? ' · stalled' : ''}${p.suspect ? ' · suspect' : ''}${faults.length ? ` · ${faults.join(', ')} (host fault injection)` : ''}`}</title>
      {p.suspect ? <circle r={r + 9} className="halo" /> : null}
      {faults.length ? <circle r={r + 5} className="fault-ring" /> : null}
      {faults.length ? <text className="node-fault" y={-r - 10} textAnchor="middle" fontSize={labelSize * 0.85} data-testid="node-fault">{faults.join(' · ')}</text> : null}
      <circle r={r} fill={p.stage === 'error' ? 'var(--bad)' : stalled ? 'var(--stalled)' : backendColor(p.backend)} filter="url(#soft)" className="dot" />
      {isPs ? <text className="node-badge" y={5} textAnchor="middle" fontSize={14}>PS</text> : null}
      {look.showLabel ? (
        <text className="node-label" y={r + labelSize + 2} textAnchor="middle" fontSize={labelSize}>{peerLabel(p)}</text>
      ) : null}
    </g>
  )
}

/** The backends present (all of them while nobody has one yet), then the node and edge markings. */
function TopologyLegend({ peers }: { peers: ApiPeer[] }) {
  const backends = [...new Set(peers.map((p) => p.backend).filter((b): b is string => !!b))].sort()
  return (
    <figcaption className="legend">
      {(backends.length ? backends : Object.keys(BACKEND_COLORS)).map((b) => (
        <span key={b}><i style={{ background: backendColor(b) }} />{b}</span>
      ))}
      <span><i className="stalled" />stalled</span>
      <span><i className="suspect" />suspect</span>
      <span><i className="faulted" />fault injected</span>
      <span className="muted">size = steps/s · line = traffic</span>
    </figcaption>
  )
}
