import { useMemo, useState, type FormEvent, type ReactNode } from 'react'
import { ALGORITHM_DESCRIPTORS, type AlgorithmKnob } from '../../shared/algorithms/descriptors'
import {
  ALGORITHMS, COMPRESSIONS, DATASETS, MODELS, defaultConfig, defaultSchedule, parseRoomConfig,
  type AlgorithmName, type RoomConfig, type TopologyName,
} from '../../shared/config'
import { createRoom, hostTokens } from './api'
import { navigate, Link } from './nav'
import { HostControl } from './HostControl'
import { useTitle } from './hooks'

/** `/host`: create a room in a few clicks; `/host?room=X`: that room's control page. */
export function HostPage({ room }: { room: string | null }) {
  if (room) return <HostControl room={room} />
  return <CreateRoom />
}

/** Which topologies an algorithm accepts (its descriptor, shared/algorithms/descriptors.ts). */
export function topologiesFor(a: AlgorithmName): readonly TopologyName[] {
  return ALGORITHM_DESCRIPTORS[a].topologies
}

const TOPOLOGY_TEXT: Record<TopologyName, string> = {
  ring: 'Ring (2 neighbours each)',
  torus: 'Torus (2-D grid)',
  exponential: 'Exponential (1, 2, 4… hops)',
  'one-peer-exponential': 'One-peer exponential',
  clique: 'Clique (everyone)',
  star: 'Star (parameter server)',
}
const DATASET_TEXT: Record<string, string> = { mnist: 'MNIST digits', 'fashion-mnist': 'Fashion-MNIST clothes', synthetic: 'Synthetic (quick)' }
const MODEL_TEXT: Record<string, string> = { mlp: 'Small MLP', 'deep-mlp': 'Deeper MLP', cnn: 'Small CNN' }

interface Preset {
  id: string
  title: string
  blurb: string
  apply: Partial<RoomConfig>
}
const PRESETS: Preset[] = [
  { id: 'demo', title: 'Classroom demo', blurb: 'MNIST, small MLP, even data split. Learns in a minute or two.', apply: { dataset: 'mnist', model: 'mlp', partition: 'iid', totalSteps: 1500 } },
  { id: 'noniid', title: 'Non-IID challenge', blurb: 'Each peer sees only 2 digit classes: where averaging really matters.', apply: { dataset: 'mnist', model: 'mlp', partition: 'label-skew:2', totalSteps: 3000 } },
  { id: 'fashion', title: 'Harder task', blurb: 'Fashion-MNIST with a small CNN. Slower, more impressive curves.', apply: { dataset: 'fashion-mnist', model: 'cnn', partition: 'iid', totalSteps: 4000 } },
]

function CreateRoom() {
  useTitle('Host a room · tabswarm')
  const [config, setConfig] = useState<RoomConfig>(() => ({ ...defaultConfig('dpsgd', PRESETS[0].apply.totalSteps), ...PRESETS[0].apply }))
  const [preset, setPreset] = useState('demo')
  const [busy, setBusy] = useState(false)
  // A class joins first and starts together: students load their data while the room waits.
  const [waitForStart, setWaitForStart] = useState(true)
  const [error, setError] = useState<{ field: string; message: string } | null>(null)
  const mine = useMemo(() => hostTokens.list(), [])

  const set = <K extends keyof RoomConfig>(k: K, v: RoomConfig[K]) => {
    setConfig((c) => {
      const next = { ...c, [k]: v }
      // A warmup still at the algorithm's default follows the run length (shared/config.ts defaultSchedule).
      if (k === 'totalSteps' && c.schedule.warmupSteps === defaultSchedule(c.algorithm, c.totalSteps).warmupSteps)
        next.schedule = { ...c.schedule, warmupSteps: defaultSchedule(c.algorithm, next.totalSteps).warmupSteps }
      return next
    })
    setError(null)
  }
  const pickAlgorithm = (a: AlgorithmName) => {
    const p = PRESETS.find((x) => x.id === preset)
    setConfig((c) => ({ ...defaultConfig(a, p?.apply.totalSteps ?? c.totalSteps), ...(p?.apply ?? {}), dataset: c.dataset, model: c.model, partition: c.partition, seed: c.seed }))
    setError(null)
  }
  const pickPreset = (p: Preset) => {
    setPreset(p.id)
    setConfig((c) => ({ ...defaultConfig(c.algorithm, p.apply.totalSteps), ...p.apply }))
    setError(null)
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const check = parseRoomConfig(config)
    if (!check.ok) {
      setError({ field: check.field, message: check.error })
      return
    }
    setBusy(true)
    setError(null)
    try {
      const created = await createRoom(check.config, { paused: waitForStart })
      hostTokens.set(created.room, created.hostToken)
      if (created.code && created.code !== created.room) hostTokens.set(created.code, created.hostToken)
      navigate(`/host?room=${encodeURIComponent(created.room)}`)
    } catch (err) {
      setError({ field: '', message: err instanceof Error ? err.message : String(err) })
    } finally {
      setBusy(false)
    }
  }

  const topologies = topologiesFor(config.algorithm)
  const fieldErr = (f: string) => (error && error.field.split('.')[0] === f ? <p className="field-error" role="alert">{error.message}</p> : null)
  // The algorithm-specific fields are shown for the algorithms that read them.
  const reads = (knob: AlgorithmKnob) => ALGORITHM_DESCRIPTORS[config.algorithm].knobs.includes(knob)
  const usesSync = reads('sync')

  return (
    <form className="host-create" onSubmit={submit} aria-label="Create a room">
      <div className="page-head">
        <h1>Host a training room</h1>
        <p className="lead">Pick how the swarm learns, press Create, and put the join code on the projector. Students join from any browser.</p>
      </div>

      {mine.length ? (
        <div className="card slim">
          <span className="muted">Your rooms on this browser:</span>{' '}
          {mine.slice(0, 8).map((r) => <Link key={r} to={`/host?room=${encodeURIComponent(r)}`} className="chip link">{r}</Link>)}
        </div>
      ) : null}

      <fieldset className="card">
        <legend>1 · Algorithm</legend>
        <div className="algo-grid" role="radiogroup" aria-label="Algorithm">
          {ALGORITHMS.map((a) => {
            const info = ALGORITHM_DESCRIPTORS[a]
            const on = config.algorithm === a
            return (
              <label key={a} className={`algo-card${on ? ' selected' : ''}`}>
                <input type="radio" name="algorithm" value={a} checked={on} onChange={() => pickAlgorithm(a)} aria-label={info.title} />
                <span className="algo-name">{info.title}</span>
                <span className="algo-blurb">{info.blurb}</span>
                <span className="algo-paper">{info.paper}</span>
              </label>
            )
          })}
        </div>
      </fieldset>

      <fieldset className="card">
        <legend>2 · Task</legend>
        <div className="preset-row" role="radiogroup" aria-label="Preset">
          {PRESETS.map((p) => (
            <button key={p.id} type="button" role="radio" aria-checked={preset === p.id} className={`preset${preset === p.id ? ' selected' : ''}`} onClick={() => pickPreset(p)}>
              <strong>{p.title}</strong>
              <span>{p.blurb}</span>
            </button>
          ))}
        </div>
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
            <NumberField label="QSR base H" value={config.sync.hBase} integer onChange={(v) => set('sync', { ...(config.sync as Extract<RoomConfig['sync'], { kind: 'qsr' }>), hBase: v })} error={fieldErr('sync')} />
          ) : null}
        </div>
        <details className="advanced">
          <summary>Advanced settings</summary>
          <div className="form-grid">
            <NumberField label="Momentum" value={config.momentum} step="any" onChange={(v) => set('momentum', v)} error={fieldErr('momentum')} />
            <NumberField label="Weight decay" value={config.weightDecay} step="any" onChange={(v) => set('weightDecay', v)} error={fieldErr('weightDecay')} />
            <Select
              label="LR schedule"
              value={config.schedule.kind}
              options={['constant', 'cosine', 'linear', 'step']}
              text={{ constant: 'Constant', cosine: 'Cosine decay', linear: 'Linear decay', step: 'Step decay' }}
              onChange={(v) => set('schedule', v === 'constant' ? { kind: 'constant', warmupSteps: config.schedule.warmupSteps } : v === 'step'
                ? { kind: 'step', warmupSteps: config.schedule.warmupSteps, milestones: [0.5, 0.75], gamma: 0.1 }
                : { kind: v as 'cosine' | 'linear', warmupSteps: config.schedule.warmupSteps, minLr: 0 })}
            />
            <NumberField label="Warm-up steps" value={config.schedule.warmupSteps} integer onChange={(v) => set('schedule', { ...config.schedule, warmupSteps: v })} error={fieldErr('schedule')} />
            {usesSync ? (
              <Select
                label="Synchronisation"
                value={config.sync.kind}
                options={['constant', 'qsr']}
                text={{ constant: 'Fixed H', qsr: 'Quadratic synchronisation rule' }}
                onChange={(v) => set('sync', v === 'qsr' ? { kind: 'qsr', hBase: 2, alpha: 0.2 } : { kind: 'constant', h: 4 })}
              />
            ) : null}
            {usesSync && config.sync.kind === 'qsr' ? (
              <NumberField label="QSR α" value={config.sync.alpha} step="any" onChange={(v) => set('sync', { ...(config.sync as Extract<RoomConfig['sync'], { kind: 'qsr' }>), alpha: v })} />
            ) : null}
            {reads('order') ? (
              <Select label="D-PSGD order" value={config.order} options={['awc', 'atc']} text={{ awc: 'Average while computing', atc: 'Adapt then combine' }} onChange={(v) => set('order', v as 'awc' | 'atc')} />
            ) : null}
            {reads('lrScaling') ? (
              <label className="field check">
                <input
                  type="checkbox"
                  checked={config.lrScaling.kind === 'linear'}
                  onChange={(e) => set('lrScaling', e.target.checked ? { kind: 'linear', referenceBatch: 256 } : { kind: 'none' })}
                />{' '}
                Scale the learning rate with the group's batch (Goyal et al.)
              </label>
            ) : null}
            {reads('resyncEvery') ? <NumberField label="Re-sync models every K steps" value={config.resyncEvery} integer onChange={(v) => set('resyncEvery', v)} error={fieldErr('resyncEvery')} /> : null}
            {reads('updaters') ? <NumberField label="Workers per tab" value={config.updaters} integer onChange={(v) => set('updaters', v)} error={fieldErr('updaters')} /> : null}
            {reads('localLr') ? <NumberField label="Local step lr" value={config.localLr} step="any" onChange={(v) => set('localLr', v)} error={fieldErr('localLr')} /> : null}
            {reads('averageOptimizerState') ? (
              <label className="field check"><input type="checkbox" checked={config.averageOptimizerState} onChange={(e) => set('averageOptimizerState', e.target.checked)} /> Average optimizer state too</label>
            ) : null}
            <Select label="Message compression" value={config.compression} options={COMPRESSIONS} text={{ fp32: 'None (fp32)', fp16: 'Half precision', int8: '8-bit' }} onChange={(v) => set('compression', v as RoomConfig['compression'])} />
            <NumberField label="Neighbour deadline (ms)" value={config.stepDeadlineMs} integer onChange={(v) => set('stepDeadlineMs', v)} error={fieldErr('stepDeadlineMs')} />
            <NumberField label="Random seed" value={config.seed} integer onChange={(v) => set('seed', v)} error={fieldErr('seed')} />
            <label className="field wide">
              <span>STUN/TURN server <em>(only for rooms across the internet)</em></span>
              <input
                placeholder="stun:stun.example.org:3478"
                value={config.iceServers.map((s) => (Array.isArray(s.urls) ? s.urls.join(' ') : s.urls)).join(' ')}
                onChange={(e) => set('iceServers', e.target.value.trim() ? e.target.value.trim().split(/\s+/).map((u) => ({ urls: u })) : [])}
              />
            </label>
          </div>
        </details>
      </fieldset>

      {error && !['topology', 'partition', 'lr', 'batchSize', 'totalSteps', 'sync', 'momentum', 'weightDecay', 'schedule', 'updaters', 'localLr', 'stepDeadlineMs', 'seed', 'resyncEvery'].includes(error.field.split('.')[0])
        ? <p className="banner error" role="alert">{error.message}</p> : null}
      <label className="field check start-choice">
        <input type="checkbox" checked={waitForStart} onChange={(e) => setWaitForStart(e.target.checked)} />
        {' '}Wait for my Start: students join and load their data, training begins when I press Start
      </label>
      <div className="submit-row">
        <span className="muted">{ALGORITHM_DESCRIPTORS[config.algorithm].title} · {config.topology} · {DATASET_TEXT[config.dataset]} · {MODEL_TEXT[config.model]}</span>
        <button type="submit" className="btn primary big" disabled={busy}>{busy ? 'Creating…' : 'Create room'}</button>
      </div>
    </form>
  )
}

export function Select({ label, value, options, text, onChange, error }: {
  label: string
  value: string
  options: readonly string[]
  text?: Record<string, string>
  onChange: (v: string) => void
  error?: ReactNode
}) {
  return (
    <label className="field">
      <span>{label}</span>
      <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value)} disabled={options.length === 1}>
        {options.map((o) => <option key={o} value={o}>{text?.[o] ?? o}</option>)}
      </select>
      {error}
    </label>
  )
}

/** A number input that keeps what the user typed while it is not (yet) a valid number. */
export function NumberField({ label, value, onChange, integer, step, error }: {
  label: string
  value: number
  onChange: (v: number) => void
  integer?: boolean
  step?: string
  error?: ReactNode
}) {
  const [text, setText] = useState(String(value))
  const [last, setLast] = useState(value)
  if (value !== last) {
    setLast(value)
    setText(String(value))
  }
  const bad = text.trim() === '' || !Number.isFinite(Number(text)) || (integer && !Number.isInteger(Number(text)))
  return (
    <label className="field">
      <span>{label}</span>
      <input
        type="number"
        aria-label={label}
        inputMode={integer ? 'numeric' : 'decimal'}
        step={step ?? (integer ? '1' : 'any')}
        value={text}
        aria-invalid={bad || Boolean(error)}
        onChange={(e) => {
          setText(e.target.value)
          const n = Number(e.target.value)
          if (e.target.value.trim() !== '' && Number.isFinite(n) && (!integer || Number.isInteger(n))) {
            setLast(n)
            onChange(n)
          }
        }}
      />
      {error}
    </label>
  )
}
