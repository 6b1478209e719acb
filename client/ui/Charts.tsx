import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import type { HistoryPoint, HistoryRun } from './api'
import { ALGORITHM_INFO } from '../../shared/config'
import { fmtBytes, fmtDuration, fmtNum, fmtPct, runColor } from './format'

/** A tiny trend line without axes (volunteer stat cards). */
export function Sparkline({ data, color, height = 32 }: { data: (number | null)[]; color: string; height?: number }) {
  const vals = data.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => typeof p[1] === 'number' && Number.isFinite(p[1]))
  if (vals.length < 2) return <div className="sparkline" style={{ height }} aria-hidden="true" />
  const w = 200
  const ys = vals.map((p) => p[1])
  const lo = Math.min(...ys)
  const hi = Math.max(...ys)
  const span = hi - lo || 1
  const x0 = vals[0][0]
  const xs = vals[vals.length - 1][0] - x0 || 1
  const pts = vals.map(([i, v]) => `${(((i - x0) / xs) * w).toFixed(1)},${(height - 3 - ((v - lo) / span) * (height - 6)).toFixed(1)}`).join(' ')
  return (
    <svg className="sparkline" viewBox={`0 0 ${w} ${height}`} preserveAspectRatio="none" style={{ height }} aria-hidden="true">
      <polyline points={pts} fill="none" stroke={color} strokeWidth={2} vectorEffect="non-scaling-stroke" strokeLinejoin="round" />
    </svg>
  )
}

export interface Series {
  name: string
  color: string
  points: { x: number; y: number }[]
  dashed?: boolean
}

export type XKind = 'time' | 'bytes' | 'step'
export type YKey = 'accuracy' | 'loss' | 'consensus' | 'lr' | 'h'

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

export function runLabel(r: HistoryRun): string {
  const info = ALGORITHM_INFO[r.config?.algorithm as keyof typeof ALGORITHM_INFO]
  return `Run ${r.run}: ${info ? info.title : r.config?.algorithm ?? '?'}`
}

/** One series per run: y against seconds since the run started, bytes sent, or global step. */
export function runSeries(runs: HistoryRun[], y: YKey, x: XKind): Series[] {
  return runs.map((r, i) => {
    const xOf = (p: HistoryPoint) => (x === 'time' ? p.t : x === 'bytes' ? p.bytes : p.globalStep)
    return {
      name: runLabel(r),
      color: runColor(i),
      points: r.points.filter((p) => finite(p[y]) && finite(xOf(p))).map((p) => ({ x: xOf(p), y: p[y] as number })),
    }
  })
}

const X_FMT: Record<XKind, (v: number) => string> = {
  time: (v) => fmtDuration(v * 1000),
  bytes: (v) => fmtBytes(v),
  step: (v) => String(Math.round(v)),
}
const X_LABEL: Record<XKind, string> = { time: 'time since start', bytes: 'bytes sent (swarm)', step: 'global step' }

export const Y_FMT: Record<YKey, (v: number) => string> = {
  accuracy: (v) => fmtPct(v, 0),
  loss: (v) => fmtNum(v, 2),
  consensus: (v) => fmtNum(v, 3),
  lr: (v) => fmtNum(v, 4),
  h: (v) => String(Math.round(v)),
}

export function SeriesChart({ series, x, y, height = 260, big = false, legend = true, yDomain }: {
  series: Series[]
  x: XKind
  y: YKey
  height?: number
  big?: boolean
  /** `true`: a legend when several series share the chart; 'always': also for one (the projector names its run). */
  legend?: boolean | 'always'
  yDomain?: [number | 'auto' | 'dataMin', number | 'auto' | 'dataMax']
}) {
  const nonEmpty = series.filter((s) => s.points.length > 0)
  if (!nonEmpty.length) {
    return <div className="chart-empty" style={{ height }}>Waiting for the first measurements…</div>
  }
  const font = big ? 18 : 12
  // Zero-based: a constant learning rate otherwise gets a degenerate axis ("0.0500" twice) and
  // float noise drawn as a bump; from 0 every series shows its true scale.
  const domain = yDomain ?? (y === 'accuracy' ? [0, 1] : [0, 'auto'])
  return (
    <div className="chart" style={{ height }}>
      <ResponsiveContainer width="100%" height="100%">
        <LineChart margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis
            type="number"
            dataKey="x"
            domain={['dataMin', 'dataMax']}
            tickFormatter={X_FMT[x]}
            tick={{ fontSize: font }}
            allowDuplicatedCategory={false}
            label={big ? undefined : { value: X_LABEL[x], position: 'insideBottomRight', offset: -2, fontSize: 11 }}
            height={big ? 36 : 40}
          />
          <YAxis type="number" dataKey="y" domain={domain} tickFormatter={Y_FMT[y]} tick={{ fontSize: font }} width={big ? 72 : 56} />
          <Tooltip
            formatter={(v) => (typeof v === 'number' ? Y_FMT[y](v) : String(v))}
            labelFormatter={(v) => (typeof v === 'number' ? X_FMT[x](v) : String(v))}
            contentStyle={{ background: 'var(--card)', border: '1px solid var(--border)', borderRadius: 8, color: 'var(--text)' }}
          />
          {legend === 'always' || (legend && nonEmpty.length > 1) ? <Legend wrapperStyle={{ fontSize: font }} /> : null}
          {nonEmpty.map((s) => (
            <Line
              key={s.name}
              name={s.name}
              data={s.points}
              dataKey="y"
              type="monotone"
              stroke={s.color}
              strokeWidth={big ? 4 : 2.5}
              strokeDasharray={s.dashed ? '6 4' : undefined}
              dot={false}
              isAnimationActive={false}
              connectNulls
            />
          ))}
        </LineChart>
      </ResponsiveContainer>
    </div>
  )
}
