import type { ApiRoom } from '../api'
import { fmtAgo } from '../format'
import { peerNameIn } from './peer-names'
import type { HostAct } from './useHostActions'

type Checkpoint = NonNullable<ApiRoom['checkpoints']>[number]

/** The checkpoints the room keeps, newest first, each one a rollback target for the whole swarm. */
export function CheckpointsCard({ room, now, busy, act }: { room: ApiRoom; now: number; busy: boolean; act: HostAct }) {
  const kept = [...(room.checkpoints ?? [])].reverse()
  const rollback = (c: Checkpoint) => {
    if (!window.confirm(`Roll back to step ${c.step} of run ${c.run} (saved ${fmtAgo(c.savedAt, now)})? Every volunteer reloads that model, and the checkpoints saved after it are dropped.`)) return
    void act('Roll back', { action: 'rollback', savedAt: c.savedAt }, `Rolled back to step ${c.step} of run ${c.run}`)
  }
  return (
    <div className="card">
      <h2>Checkpoints</h2>
      <p className="muted small">Roll back when a run went wrong: every volunteer reloads that model and training goes on from there; newer checkpoints are dropped.</p>
      {kept.length === 0 ? (
        <p className="muted" data-testid="no-checkpoints">No checkpoints yet: the checkpoint writer saves one every so often while the swarm trains.</p>
      ) : (
        <div className="table-wrap">
          <table className="peers" aria-label="Checkpoints">
            <thead>
              <tr><th>Checkpoint</th><th>Saved</th><th>By</th><th><span className="sr-only">Actions</span></th></tr>
            </thead>
            <tbody>
              {kept.map((c) => (
                <tr key={c.savedAt} data-testid="checkpoint-row">
                  <td>Run {c.run} · step {c.step}{c.current ? <span className="tag" title="resumes and downloads use this one">current</span> : null}</td>
                  <td title={new Date(c.savedAt).toLocaleString()}>{fmtAgo(c.savedAt, now)}</td>
                  <td>{c.by ? peerNameIn(room, c.by) : '—'}</td>
                  <td className="actions">
                    {c.current ? null : (
                      <button className="btn small danger" disabled={busy} onClick={() => rollback(c)} aria-label={`Roll back to run ${c.run} step ${c.step}`}>Roll back</button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}
