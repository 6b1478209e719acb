import type { AlgorithmKnob } from '../../../shared/algorithms/descriptors'
import { COMPRESSIONS, HIDDEN_GRACE_DEFAULT_MS, TEST_SUBSET_DEFAULT, type RoomConfig } from '../../../shared/config'
import { LINK_PROFILES } from '../../../shared/link-conditions'
import { NumberField, Select } from './fields'
import { readsKnob, type QsrSync } from './room-options'
import type { FormBinding } from './useRoomForm'

/** The collapsed part of the hyper-parameters: what a classroom demo rarely changes. */
export function AdvancedSettings({ form }: { form: FormBinding }) {
  const { config, set, fieldErr } = form
  return (
    <details className="advanced">
      <summary>Advanced settings</summary>
      <div className="form-grid">
        <NumberField label="Momentum" value={config.momentum} step="any" onChange={(v) => set('momentum', v)} error={fieldErr('momentum')} />
        <NumberField label="Weight decay" value={config.weightDecay} step="any" onChange={(v) => set('weightDecay', v)} error={fieldErr('weightDecay')} />
        <ScheduleFields form={form} />
        <AlgorithmKnobFields form={form} />
        <Select label="Message compression" value={config.compression} options={COMPRESSIONS} text={{ fp32: 'None (fp32)', fp16: 'Half precision', int8: '8-bit' }} onChange={(v) => set('compression', v as RoomConfig['compression'])} />
        {/* Emulated network conditions on every link (docs/architecture.md "Link conditions"): see how an algorithm copes with a school's uplink. */}
        <Select label="Emulated network" value={config.link ?? 'lan'} options={LINK_PROFILES} text={{ lan: 'None (as is)', wan: 'WAN: 40 ms RTT, 50 Mbit/s', slow: 'Slow: 150 ms RTT, 10 Mbit/s', lossy: 'Lossy: WAN + 2 % loss' }} onChange={(v) => set('link', v as RoomConfig['link'])} />
        <NumberField label="Neighbour deadline (ms)" value={config.stepDeadlineMs} integer onChange={(v) => set('stepDeadlineMs', v)} error={fieldErr('stepDeadlineMs')} />
        <NumberField label="Random seed" value={config.seed} integer onChange={(v) => set('seed', v)} error={fieldErr('seed')} />
        {/* Seconds here (ms in the config): how long a student's screen may dim or their tab hide before they step aside. */}
        <NumberField
          label="Hidden-tab grace (s)"
          value={(config.hiddenGraceMs ?? HIDDEN_GRACE_DEFAULT_MS) / 1000}
          step="any"
          onChange={(v) => set('hiddenGraceMs', Math.round(v * 1000))}
          error={fieldErr('hiddenGraceMs')}
        />
        {/* Every tab measures accuracy on the same subset; a larger one costs each tab 785 bytes per image. */}
        <NumberField
          label="Test images per tab"
          value={config.testSubset ?? TEST_SUBSET_DEFAULT}
          integer
          onChange={(v) => set('testSubset', v)}
          error={fieldErr('testSubset')}
        />
        <IceServersField form={form} />
      </div>
    </details>
  )
}

/** A schedule of another kind keeps the warm-up; its other parameters start at the defaults. */
function scheduleOfKind(kind: string, warmupSteps: number): RoomConfig['schedule'] {
  if (kind === 'constant') return { kind: 'constant', warmupSteps }
  if (kind === 'step') return { kind: 'step', warmupSteps, milestones: [0.5, 0.75], gamma: 0.1 }
  return { kind: kind as 'cosine' | 'linear', warmupSteps, minLr: 0 }
}

function ScheduleFields({ form: { config, set, fieldErr } }: { form: FormBinding }) {
  return (
    <>
      <Select
        label="LR schedule"
        value={config.schedule.kind}
        options={['constant', 'cosine', 'linear', 'step']}
        text={{ constant: 'Constant', cosine: 'Cosine decay', linear: 'Linear decay', step: 'Step decay' }}
        onChange={(v) => set('schedule', scheduleOfKind(v, config.schedule.warmupSteps))}
      />
      <NumberField label="Warm-up steps" value={config.schedule.warmupSteps} integer onChange={(v) => set('schedule', { ...config.schedule, warmupSteps: v })} error={fieldErr('schedule')} />
    </>
  )
}

function AlgorithmKnobFields({ form: { config, set, fieldErr } }: { form: FormBinding }) {
  const reads = (knob: AlgorithmKnob) => readsKnob(config, knob)
  const usesSync = reads('sync')
  return (
    <>
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
        <NumberField label="QSR α" value={config.sync.alpha} step="any" onChange={(v) => set('sync', { ...(config.sync as QsrSync), alpha: v })} />
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
    </>
  )
}

function IceServersField({ form: { config, set } }: { form: FormBinding }) {
  return (
    <label className="field wide">
      <span>STUN/TURN server <em>(only for rooms across the internet)</em></span>
      <input
        placeholder="stun:stun.example.org:3478"
        value={config.iceServers.map((s) => (Array.isArray(s.urls) ? s.urls.join(' ') : s.urls)).join(' ')}
        onChange={(e) => set('iceServers', e.target.value.trim() ? e.target.value.trim().split(/\s+/).map((u) => ({ urls: u })) : [])}
      />
    </label>
  )
}
