import { useState, type FormEvent } from 'react'
import { MAX_NAME_CHARS, normalizeName } from '../../../shared/names'
import type { SessionSnapshot } from '../../session/types'
import { fmtInt, fmtPct } from '../format'
import { Link } from '../nav'
import { RunProgress, useRunProgress } from '../progress'
import { saveName } from '../session-adapter'

/** "#3 of 12 · 4,120 samples · 8 % of the run", or what is known so far. */
export function standingText(credit: SessionSnapshot['credit']): string {
  if (!credit) return 'Your contribution shows here once you have trained a little.'
  if (credit.rank === 0) return 'No samples yet in this run: they count from your first training step.'
  return `#${credit.rank} of ${credit.of} · ${fmtInt(credit.samples)} samples · ${fmtPct(credit.share, credit.share < 0.1 ? 1 : 0)} of the run`
}

/**
 * Who this tab is to the room (its name; the stable id on hover), its place among the run's
 * contributors (the server's ledger, kept across reloads and pauses), where the run is going,
 * and the way to the live dashboard.
 */
export function ContributionCard({ snapshot: s }: { snapshot: SessionSnapshot }) {
  const progress = useRunProgress(s.globalStep, s.config?.totalSteps ?? 0, s.run)
  return (
    <div className="card contribution" data-testid="contribution">
      <div className="card-head wrap">
        <div>
          <div className="eyebrow">You are</div>
          <NameLine snapshot={s} />
        </div>
        <Link to={`/room/${encodeURIComponent(s.room)}`} className="btn small" newTab>Open the live dashboard ↗</Link>
      </div>
      <p className="standing" data-testid="standing">{standingText(s.credit)}</p>
      {s.config ? <RunProgress progress={progress} /> : null}
      {s.screenOn ? <p className="muted small" data-testid="screen-on">The screen stays on while this tab trains.</p> : null}
    </div>
  )
}

/** The name, and a small form to change it: saved for next time, and applied by a reload (same id, same credit). */
function NameLine({ snapshot: s }: { snapshot: SessionSnapshot }) {
  const [editing, setEditing] = useState(false)
  const [draft, setDraft] = useState(s.name ?? '')
  const submit = (e: FormEvent) => {
    e.preventDefault()
    const n = normalizeName(draft)
    if (!n || n === s.name) return setEditing(false)
    saveName(n)
    // The name goes out with the join: a reload rejoins under the same id, keeping the credit.
    const url = new URL(window.location.href)
    url.searchParams.delete('name')
    window.location.replace(url)
  }
  if (editing) {
    return (
      <form className="name-edit" onSubmit={submit} aria-label="Change your name">
        <input aria-label="New name" value={draft} maxLength={MAX_NAME_CHARS} onChange={(e) => setDraft(e.target.value)} autoFocus autoComplete="nickname" />
        <button type="submit" className="btn small primary">Save</button>
        <button type="button" className="btn small" onClick={() => setEditing(false)}>Cancel</button>
      </form>
    )
  }
  return (
    <h2 className="volunteer-name">
      <span data-testid="volunteer-name" title={s.self ? `id ${s.self}` : undefined}>{s.name ?? 'a volunteer'}</span>{' '}
      <button type="button" className="btn small" onClick={() => { setDraft(s.name ?? ''); setEditing(true) }}>Change</button>
    </h2>
  )
}
