import { useEffect, useState } from 'react'
import { control, type ControlAction } from '../api'

export type Notice = { kind: 'ok' | 'error'; text: string } | null

/** Sends one host control: `label` names it while busy and in a failure, `done` is the success notice. */
export type HostAct = (label: string, body: ControlAction, done: string) => Promise<void>

/**
 * Runs any other host request (e.g. deleting the room) the same way: one at a time, a failure
 * becomes the notice, `done` (if any) the success notice. Resolves to whether it succeeded.
 */
export type HostRun = (label: string, request: () => Promise<void>, done?: string) => Promise<boolean>

/** One host control at a time, and a notice of how the last one went (a success fades after 3 s). */
export function useHostActions(room: string, token: string): { notice: Notice; busy: boolean; act: HostAct; run: HostRun } {
  const [notice, setNotice] = useState<Notice>(null)
  const [busy, setBusy] = useState<string | null>(null)

  useEffect(() => {
    if (notice?.kind !== 'ok') return
    const t = setTimeout(() => setNotice(null), 3000)
    return () => clearTimeout(t)
  }, [notice])

  const run: HostRun = async (label, request, done) => {
    setBusy(label)
    try {
      await request()
      if (done) setNotice({ kind: 'ok', text: done })
      return true
    } catch (e) {
      setNotice({ kind: 'error', text: `${label} failed: ${e instanceof Error ? e.message : String(e)}` })
      return false
    } finally {
      setBusy(null)
    }
  }
  const act: HostAct = async (label, body, done) => {
    await run(label, () => control(room, token, body), done)
  }
  return { notice, busy: Boolean(busy), act, run }
}
