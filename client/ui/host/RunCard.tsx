import { useState } from 'react'
import { ALGORITHM_DESCRIPTORS } from '../../../shared/algorithms/descriptors'
import { ALGORITHMS, defaultConfig, type AlgorithmName } from '../../../shared/config'
import type { ApiRoom } from '../api'
import { DivergedBanner } from '../DivergedBanner'
import type { HostAct } from './useHostActions'

interface RunProps {
  room: ApiRoom
  busy: boolean
  act: HostAct
}

/** Start (first time) vs Resume: has this run trained at all yet? */
function hasStarted(room: ApiRoom): boolean {
  return room.checkpointStep != null || room.peers.some((p) => (p.step ?? 0) > 0)
}

/** Start, pause, resume and reset the current run, or start the next one with another algorithm. */
export function RunCard({ room, busy, act }: RunProps) {
  // After a divergence: the same run again with a third of the learning rate (the banner's advice).
  const lowerLr = +(room.config.lr / 3).toPrecision(2)
  const retryLowerLr = () =>
    void act('New run', { action: 'new-run', config: { ...room.config, lr: lowerLr } }, `Run ${(room.run ?? 0) + 1} started with learning rate ${lowerLr}`)
  return (
    <div className="card">
      <h2>Run</h2>
      <DivergedBanner room={room} action={
        <button className="btn primary" disabled={busy} onClick={retryLowerLr}>New run with learning rate {lowerLr}</button>
      } />
      <RunButtons room={room} busy={busy} act={act} />
      <RunStatus room={room} />
      <CompareRunForm room={room} busy={busy} act={act} />
    </div>
  )
}

function RunButtons({ room, busy, act }: RunProps) {
  const started = hasStarted(room)
  const reset = () => {
    if (window.confirm('Start this run over from random weights? (The current run stays in the history for comparison.)')) void act('Reset', { action: 'reset' }, 'Run restarted from random weights')
  }
  return (
    <div className="btn-row">
      {room.paused && !started
        ? <button className="btn primary" disabled={busy} onClick={() => act('Start', { action: 'start' }, 'Training started')}>Start</button>
        : room.paused
          ? <button className="btn primary" disabled={busy} onClick={() => act('Resume', { action: 'resume' }, 'Training resumed')}>Resume</button>
          : <button className="btn" disabled={busy} onClick={() => act('Pause', { action: 'pause' }, 'Training paused')}>Pause</button>}
      <button className="btn danger" disabled={busy} onClick={reset}>Reset</button>
    </div>
  )
}

function RunStatus({ room }: { room: ApiRoom }) {
  const loading = room.joining?.filter((j) => !j.away).length ?? 0
  return (
    <p className="muted small" role="status">
      {room.paused && !hasStarted(room)
        ? `Waiting for your Start: ${room.peers.length} ${room.peers.length === 1 ? 'student is' : 'students are'} ready${loading ? `, ${loading} still loading` : ''}.`
        : room.diverged ? 'Stopped: the run diverged.' : room.paused ? 'Paused: every tab stops at its next step.' : 'Training.'}
    </p>
  )
}

function CompareRunForm({ room, busy, act }: RunProps) {
  const others = ALGORITHMS.filter((a) => a !== room.config.algorithm)
  const [nextAlgo, setNextAlgo] = useState<AlgorithmName>(others[0])
  const newRun = () => {
    const next = ALGORITHM_DESCRIPTORS[nextAlgo]
    const base = defaultConfig(nextAlgo)
    const keep = { dataset: room.config.dataset, model: room.config.model, partition: room.config.partition, batchSize: room.config.batchSize, totalSteps: room.config.totalSteps, seed: room.config.seed }
    // The room's topology when the next algorithm accepts it, else the next algorithm's default.
    const topology = next.topologies.includes(room.config.topology) ? room.config.topology : next.defaultTopology
    void act('New run', { action: 'new-run', config: { ...base, ...keep, topology, algorithm: nextAlgo } }, `Run ${(room.run ?? 0) + 1} started with ${next.title}`)
  }
  return (
    <>
      <h3>Compare with another algorithm</h3>
      <div className="inline-form">
        <label className="field grow">
          <span>Next run</span>
          <select aria-label="Next run" value={nextAlgo} onChange={(e) => setNextAlgo(e.target.value as AlgorithmName)}>
            {others.map((a) => <option key={a} value={a}>{ALGORITHM_DESCRIPTORS[a].title}</option>)}
          </select>
        </label>
        <button className="btn primary" disabled={busy} onClick={newRun}>Start new run</button>
      </div>
      <p className="muted small">{ALGORITHM_DESCRIPTORS[nextAlgo].blurb} The dashboard overlays both runs.</p>
    </>
  )
}
