import { useEffect, useRef, useState, type ReactNode } from 'react'
import type { SessionSnapshot } from '../../session/types'
import { Sparkline } from '../Charts'
import { backendColor, fmtBytes, fmtCompact, fmtNum, fmtPct } from '../format'

export interface Sample {
  t: number
  loss: number | null
  accuracy: number | null
}

/** Keeps a short local trace for the sparklines (the dashboard has the full history). */
export function useTrend(s: SessionSnapshot): Sample[] {
  const [trend, setTrend] = useState<Sample[]>([])
  const lastStep = useRef(-1)
  useEffect(() => {
    if (s.step === lastStep.current) return
    lastStep.current = s.step
    setTrend((t) => [...t.slice(-119), { t: Date.now(), loss: s.loss, accuracy: s.accuracy }])
  }, [s.step, s.loss, s.accuracy])
  return trend
}

export function DataProgress({ snapshot: s }: { snapshot: SessionSnapshot }) {
  if (!(s.stage === 'loading' || (s.dataProgress > 0 && s.dataProgress < 1))) return null
  return (
    <div className="card">
      <div className="progress-label">
        <span>Downloading training data</span>
        <strong>{Math.round(s.dataProgress * 100)}%</strong>
      </div>
      <div className="progress" role="progressbar" aria-label="Dataset download" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(s.dataProgress * 100)}>
        <div className="progress-fill" style={{ width: `${Math.max(2, Math.min(100, s.dataProgress * 100))}%` }} />
      </div>
    </div>
  )
}

export function StatGrid({ snapshot: s, trend }: { snapshot: SessionSnapshot; trend: Sample[] }) {
  const thread = s.computeThread === 'worker' ? 'model on a worker thread' : s.computeThread === 'main' ? 'model on the page thread' : ''
  return (
    <div className="stat-grid">
      <Stat label="Test accuracy" testId="stat-accuracy" value={fmtPct(s.accuracy)} accent>
        <Sparkline data={trend.map((p) => p.accuracy)} color="var(--good)" />
      </Stat>
      <Stat label="Loss" testId="stat-loss" value={fmtNum(s.loss, 3)}>
        <Sparkline data={trend.map((p) => p.loss)} color="var(--accent)" />
      </Stat>
      <Stat label="Step" testId="stat-step" value={String(s.step)} sub={s.globalStep > s.step ? `swarm at ${s.globalStep}` : undefined} />
      <Stat label="Steps / s" value={fmtNum(s.stepsPerSec, 1)} sub={`${fmtCompact(s.samplesPerSec)} samples/s`} />
      <Stat
        label="Backend" testId="stat-backend" value={s.backend ?? '—'} color={s.backend ? backendColor(s.backend) : undefined}
        sub={[thread, backendWhy(s.backendReason)].filter(Boolean).join(' · ') || undefined} detail={s.backendReason || undefined}
      />
      <Stat label="Neighbours" testId="stat-peers" value={String(s.neighbors.length)} sub={`${s.peers.length} in the room`} />
      <Stat label="Sent" testId="stat-bytes-sent" value={fmtBytes(s.bytesSent)} sub="peer-to-peer" />
      <Stat label="Received" testId="stat-bytes-received" value={fmtBytes(s.bytesReceived)} sub="peer-to-peer" />
      <Stat label="Samples contributed" testId="stat-samples" value={fmtCompact(s.credit?.samples ?? s.samples)} sub={s.credit ? 'this run, kept if you reload or pause' : undefined} />
      <Stat label="Learning rate" value={fmtNum(s.lr, 4)} sub={s.h !== null ? `sync every H = ${s.h} steps` : undefined} />
    </div>
  )
}

/** Why this backend, in plain words (the measurements stay in the tooltip). */
function backendWhy(reason: string): string {
  if (/forced/.test(reason) && !/failed/.test(reason)) return 'as the link asks'
  if (/fastest measured/.test(reason)) return 'the fastest on this device'
  return reason
}

function Stat({ label, value, sub, detail, testId, accent, color, children }: {
  label: string
  value: string
  sub?: string
  /** The technical account behind `sub` (its tooltip). */
  detail?: string
  testId?: string
  accent?: boolean
  color?: string
  children?: ReactNode
}) {
  return (
    <div className={`stat card${accent ? ' accent' : ''}`}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId} style={color ? { color } : undefined}>{value}</div>
      {sub ? <div className="stat-sub" title={detail ?? sub}>{sub}</div> : null}
      {children}
    </div>
  )
}
