import { useState, type ReactNode } from 'react'

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
