import { useEffect, useState } from 'react'
import { control, type ControlAction } from '../api'

export type Notice = { kind: 'ok' | 'error'; text: string } | null

/** Sends one host control: `label` names it while busy and in a failure, `done` is the success notice. */
export type HostAct = (label: string, body: ControlAction, done: string) => Promise<void>

/** One host control at a time, and a notice of how the last one went (a success fades after 3 s). */
export function useHostActions(room: string, token: string): { notice: Notice; busy: boolean; act: HostAct } {
  const [notice, setNotice] = useState<Notice>(null)
  const [busy, setBusy] = useState<string | null>(null)

  useEffect(() => {
    if (notice?.kind !== 'ok') return
    const t = setTimeout(() => setNotice(null), 3000)
    return () => clearTimeout(t)
  }, [notice])

  const act: HostAct = async (label, body, done) => {
    setBusy(label)
    try {
      await control(room, token, body)
      setNotice({ kind: 'ok', text: done })
    } catch (e) {
      setNotice({ kind: 'error', text: `${label} failed: ${e instanceof Error ? e.message : String(e)}` })
    } finally {
      setBusy(null)
    }
  }
  return { notice, busy: Boolean(busy), act }
}
