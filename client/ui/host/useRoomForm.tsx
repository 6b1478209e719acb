import { useState, type FormEvent, type ReactNode } from 'react'
import { defaultConfig, defaultSchedule, parseRoomConfig, type AlgorithmName, type RoomConfig } from '../../../shared/config'
import { createRoom, hostTokens } from '../api'
import { navigate } from '../nav'
import { PRESETS, type Preset } from './room-options'

export interface FormError {
  field: string
  message: string
}

/** What a fieldset of the create-room form needs: the config, a setter, and its fields' errors. */
export interface FormBinding {
  config: RoomConfig
  set: <K extends keyof RoomConfig>(k: K, v: RoomConfig[K]) => void
  fieldErr: (field: string) => ReactNode
}

/** The create-room form's state: the config being edited, the chosen preset, and the submit. */
export function useRoomForm() {
  const [config, setConfig] = useState<RoomConfig>(() => ({ ...defaultConfig('dpsgd', PRESETS[0].apply.totalSteps), ...PRESETS[0].apply }))
  const [preset, setPreset] = useState('demo')
  const [error, setError] = useState<FormError | null>(null)

  const set: FormBinding['set'] = (k, v) => {
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
    // A preset that names its own algorithm (slow network) is a recipe for that one: another
    // algorithm keeps the task but none of the recipe's tuning.
    const other = p?.apply.algorithm !== undefined && p.apply.algorithm !== a
    if (other) setPreset('')
    const apply = other ? {} : (p?.apply ?? {})
    setConfig((c) => ({ ...defaultConfig(a, p?.apply.totalSteps ?? c.totalSteps), ...apply, dataset: c.dataset, model: c.model, partition: c.partition, seed: c.seed }))
    setError(null)
  }
  const pickPreset = (p: Preset) => {
    setPreset(p.id)
    setConfig((c) => ({ ...defaultConfig(p.apply.algorithm ?? c.algorithm, p.apply.totalSteps), ...p.apply }))
    setError(null)
  }
  const fieldErr = (f: string) => (error && error.field.split('.')[0] === f ? <p className="field-error" role="alert">{error.message}</p> : null)
  const create = useCreateRoom(config, setError)

  return { config, set, fieldErr, preset, pickAlgorithm, pickPreset, error, ...create }
}

/** Validates the config, creates the room, keeps its host token on this browser and opens its control page. */
function useCreateRoom(config: RoomConfig, setError: (e: FormError | null) => void) {
  const [busy, setBusy] = useState(false)
  // A class joins first and starts together: students load their data while the room waits.
  const [waitForStart, setWaitForStart] = useState(true)

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
  return { busy, waitForStart, setWaitForStart, submit }
}
