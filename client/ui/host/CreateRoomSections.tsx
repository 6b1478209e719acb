import { useMemo } from 'react'
import { ALGORITHM_DESCRIPTORS } from '../../../shared/algorithms/descriptors'
import { ALGORITHMS, DATASETS, MODELS, type AlgorithmName, type RoomConfig, type TopologyName } from '../../../shared/config'
import { hostTokens } from '../api'
import { Link } from '../nav'
import { AdvancedSettings } from './AdvancedSettings'
import { NumberField, Select } from './fields'
import { DATASET_TEXT, MODEL_TEXT, PRESETS, TOPOLOGY_TEXT, readsKnob, type Preset, type QsrSync } from './room-options'
import type { FormBinding, FormError } from './useRoomForm'

/** Links back to the rooms this browser holds a host key for. */
export function YourRooms() {
  const mine = useMemo(() => hostTokens.list(), [])
  if (!mine.length) return null
  return (
    <div className="card slim">
      <span className="muted">Your rooms on this browser:</span>{' '}
      {mine.slice(0, 8).map((r) => <Link key={r} to={`/host?room=${encodeURIComponent(r)}`} className="chip link">{r}</Link>)}
    </div>
  )
}

export function AlgorithmFieldset({ algorithm, onPick }: { algorithm: AlgorithmName; onPick: (a: AlgorithmName) => void }) {
  return (
    <fieldset className="card">
      <legend>1 · Algorithm</legend>
      <div className="algo-grid" role="radiogroup" aria-label="Algorithm">
        {ALGORITHMS.map((a) => {
          const info = ALGORITHM_DESCRIPTORS[a]
          const on = algorithm === a
          return (
            <label key={a} className={`algo-card${on ? ' selected' : ''}`}>
              <input type="radio" name="algorithm" value={a} checked={on} onChange={() => onPick(a)} aria-label={info.title} />
              <span className="algo-name">{info.title}</span>
              <span className="algo-blurb">{info.blurb}</span>
              <span className="algo-blurb muted">{info.pick}</span>
              <span className="algo-paper">{info.paper}</span>
            </label>
          )
        })}
      </div>
    </fieldset>
  )
}

function PresetPicker({ preset, onPick }: { preset: string; onPick: (p: Preset) => void }) {
  return (
    <div className="preset-row" role="radiogroup" aria-label="Preset">
      {PRESETS.map((p) => (
        <button key={p.id} type="button" role="radio" aria-checked={preset === p.id} className={`preset${preset === p.id ? ' selected' : ''}`} onClick={() => onPick(p)}>
          <strong>{p.title}</strong>
          <span>{p.blurb}</span>
        </button>
      ))}
    </div>
  )
}

export function TaskFieldset({ form, topologies, preset, onPreset }: {
  form: FormBinding
  topologies: readonly TopologyName[]
  preset: string
  onPreset: (p: Preset) => void
}) {
  const { config, set, fieldErr } = form
  return (
    <fieldset className="card">
      <legend>2 · Task</legend>
      <PresetPicker preset={preset} onPick={onPreset} />
      <div className="form-grid">
        <Select label="Topology" value={config.topology} options={topologies} text={TOPOLOGY_TEXT} onChange={(v) => set('topology', v as TopologyName)} error={fieldErr('topology')} />
        <Select label="Dataset" value={config.dataset} options={DATASETS} text={DATASET_TEXT} onChange={(v) => set('dataset', v as RoomConfig['dataset'])} />
        <Select label="Model" value={config.model} options={MODELS} text={MODEL_TEXT} onChange={(v) => set('model', v as RoomConfig['model'])} />
        <Select
          label="Data split"
          value={config.partition}
          options={['iid', 'label-skew:2', 'label-skew:5', 'dirichlet:0.5', 'dirichlet:0.1']}
          text={{ iid: 'Even (iid)', 'label-skew:2': '2 classes per peer', 'label-skew:5': '5 classes per peer', 'dirichlet:0.5': 'Uneven (Dirichlet 0.5)', 'dirichlet:0.1': 'Very uneven (Dirichlet 0.1)' }}
          onChange={(v) => set('partition', v)}
          error={fieldErr('partition')}
        />
      </div>
    </fieldset>
  )
}

export function HyperParametersFieldset({ form }: { form: FormBinding }) {
  const { config, set, fieldErr } = form
  const usesSync = readsKnob(config, 'sync')
  return (
    <fieldset className="card">
      <legend>3 · Hyper-parameters</legend>
      <div className="form-grid">
        <NumberField label="Learning rate" value={config.lr} step="any" onChange={(v) => set('lr', v)} error={fieldErr('lr')} />
        <NumberField label="Batch size per peer" value={config.batchSize} integer onChange={(v) => set('batchSize', v)} error={fieldErr('batchSize')} />
        <NumberField label="Training steps" value={config.totalSteps} integer onChange={(v) => set('totalSteps', v)} error={fieldErr('totalSteps')} />
        {usesSync && config.sync.kind === 'constant' ? (
          <NumberField label="Average every H steps" value={config.sync.h} integer onChange={(v) => set('sync', { kind: 'constant', h: v })} error={fieldErr('sync')} />
        ) : null}
        {usesSync && config.sync.kind === 'qsr' ? (
          <NumberField label="QSR base H" value={config.sync.hBase} integer onChange={(v) => set('sync', { ...(config.sync as QsrSync), hBase: v })} error={fieldErr('sync')} />
        ) : null}
      </div>
      <AdvancedSettings form={form} />
    </fieldset>
  )
}

/** Fields that show their error next to the input; any other error (the server's included) goes in the banner. */
const FIELDS_WITH_OWN_ERROR = ['topology', 'partition', 'lr', 'batchSize', 'totalSteps', 'sync', 'momentum', 'weightDecay', 'schedule', 'updaters', 'localLr', 'stepDeadlineMs', 'seed', 'resyncEvery']

export function SubmitBar({ config, error, busy, waitForStart, onWaitForStart }: {
  config: RoomConfig
  error: FormError | null
  busy: boolean
  waitForStart: boolean
  onWaitForStart: (wait: boolean) => void
}) {
  return (
    <>
      {error && !FIELDS_WITH_OWN_ERROR.includes(error.field.split('.')[0])
        ? <p className="banner error" role="alert">{error.message}</p> : null}
      <label className="field check start-choice">
        <input type="checkbox" checked={waitForStart} onChange={(e) => onWaitForStart(e.target.checked)} />
        {' '}Wait for my Start: students join and load their data, training begins when I press Start
      </label>
      <div className="submit-row">
        <span className="muted">{ALGORITHM_DESCRIPTORS[config.algorithm].title} · {config.topology} · {DATASET_TEXT[config.dataset]} · {MODEL_TEXT[config.model]}</span>
        <button type="submit" className="btn primary big" disabled={busy}>{busy ? 'Creating…' : 'Create room'}</button>
      </div>
    </>
  )
}
