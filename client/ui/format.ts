/** Number formatting for large, readable stats; every function accepts null/NaN and shows a dash. */

const DASH = '—'

const ok = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v)

export function fmtBytes(v: number | null | undefined): string {
  if (!ok(v)) return DASH
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let x = v
  let u = 0
  while (x >= 1000 && u < units.length - 1) {
    x /= 1000
    u++
  }
  return `${x >= 100 || u === 0 ? x.toFixed(0) : x.toFixed(1)} ${units[u]}`
}

export function fmtPct(v: number | null | undefined, digits = 1): string {
  return ok(v) ? `${(v * 100).toFixed(digits)}%` : DASH
}

export function fmtNum(v: number | null | undefined, digits = 2): string {
  if (!ok(v)) return DASH
  if (v !== 0 && Math.abs(v) < 10 ** -digits) return v.toExponential(1)
  return v.toFixed(digits)
}

export function fmtInt(v: number | null | undefined): string {
  return ok(v) ? Math.round(v).toLocaleString('en-US') : DASH
}

export function fmtCompact(v: number | null | undefined): string {
  if (!ok(v)) return DASH
  return new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }).format(v)
}

export function fmtDuration(ms: number | null | undefined): string {
  if (!ok(ms)) return DASH
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`
}

export function fmtAgo(ts: number | null | undefined, now = Date.now()): string {
  if (!ok(ts)) return DASH
  return `${fmtDuration(now - ts)} ago`
}

/** Colours per tfjs backend, shared by the graph, the table and the legend. */
export const BACKEND_COLORS: Record<string, string> = {
  webgpu: '#a855f7',
  webgl: '#f59e0b',
  wasm: '#14b8a6',
  cpu: '#64748b',
}
export const backendColor = (b: string | null | undefined) => BACKEND_COLORS[b ?? ''] ?? '#94a3b8'

/** Distinct colours for overlaid runs. */
export const RUN_COLORS = ['#3b82f6', '#ef4444', '#10b981', '#f59e0b', '#8b5cf6', '#ec4899', '#06b6d4', '#84cc16']
export const runColor = (i: number) => RUN_COLORS[i % RUN_COLORS.length]

/** "slowed ×4", "+200 ms": the host's fault injection on a peer, as the dashboard tags it. */
export function faultTags(p: { slowFactor?: number; addedLatencyMs?: number; link?: string }): string[] {
  const out: string[] = []
  if (ok(p.slowFactor) && p.slowFactor > 1) out.push(`slowed ×${Number.isInteger(p.slowFactor) ? p.slowFactor : p.slowFactor.toFixed(1)}`)
  if (ok(p.addedLatencyMs) && p.addedLatencyMs > 0) out.push(`+${Math.round(p.addedLatencyMs)} ms`)
  // Emulated link conditions (docs/architecture.md "Link conditions"); 'lan' emulates nothing.
  if (p.link && p.link !== 'lan') out.push(`link: ${p.link}`)
  return out
}

export const shortId = (id: string) => (id.length > 8 ? id.slice(0, 6) : id)
export const peerLabel = (p: { id: string; name?: string | null }) => (p.name && p.name.trim() ? p.name : shortId(p.id))
