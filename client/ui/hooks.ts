import { useEffect, useState } from 'react'

// Room state and history: room-feed.ts (socket.io pushes; HTTP polling only as a fallback).

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
