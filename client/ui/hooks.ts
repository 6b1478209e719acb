import { useEffect, useRef, useState } from 'react'
import { getHistory, getRoom, type ApiHistory, type ApiRoom } from './api'

/** Polls `fn` every `intervalMs`, never overlapping requests; keeps the last good value on error. */
export function usePoll<T>(key: string | null, fn: (key: string, signal: AbortSignal) => Promise<T>, intervalMs: number) {
  const [data, setData] = useState<T | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [status, setStatus] = useState<number | null>(null)
  const fnRef = useRef(fn)
  fnRef.current = fn
  useEffect(() => {
    if (!key) return
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const ac = new AbortController()
    const tick = async () => {
      try {
        const v = await fnRef.current(key, ac.signal)
        if (stopped) return
        setData(v)
        setError(null)
        setStatus(200)
      } catch (e) {
        if (stopped) return
        setError(e instanceof Error ? e.message : String(e))
        setStatus((e as { status?: number }).status ?? null)
      }
      if (!stopped) timer = setTimeout(tick, intervalMs)
    }
    void tick()
    return () => {
      stopped = true
      ac.abort()
      if (timer) clearTimeout(timer)
    }
  }, [key, intervalMs])
  return { data, error, status }
}

export const useRoom = (room: string | null, intervalMs = 1000) => usePoll<ApiRoom>(room, getRoom, intervalMs)
export const useHistory = (room: string | null, intervalMs = 2000) => usePoll<ApiHistory>(room, getHistory, intervalMs)

/** Current time, refreshed every `ms` (for "last seen" labels). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms)
    return () => clearInterval(t)
  }, [ms])
  return now
}

/** Page title helper. */
export function useTitle(title: string) {
  useEffect(() => {
    document.title = title
  }, [title])
}
