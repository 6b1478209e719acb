import { useEffect, useRef, useState } from 'react'
import type { ApiHistory, ApiRoom, HistoryPoint, HistoryRun } from './api'
import { globalStep } from './PeerTable'

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const mean = (xs: (number | null | undefined)[]) => {
  const v = xs.filter(finite)
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null
}

export interface SwarmSummary {
  peers: number
  accuracy: number | null
  loss: number | null
  globalStep: number
  stepsPerSec: number
  samples: number
  bytes: number
  lr: number | null
  h: number | null
  consensus: number | null
}

/** The swarm at a glance: means over peers that reported a value, totals for rates and bytes. */
export function summarize(room: ApiRoom | null): SwarmSummary {
  const peers = room?.peers ?? []
  return {
    peers: peers.length,
    accuracy: mean(peers.map((p) => p.accuracy)),
    loss: mean(peers.map((p) => p.loss)),
    globalStep: globalStep(peers),
    stepsPerSec: peers.reduce((a, p) => a + (p.stepsPerSec ?? 0), 0),
    samples: peers.reduce((a, p) => a + (p.samples ?? 0), 0),
    bytes: peers.reduce((a, p) => a + (p.bytesSent ?? 0), 0),
    lr: mean(peers.map((p) => p.lr)),
    h: mean(peers.map((p) => p.h)),
    consensus: mean(peers.map((p) => p.consensus)),
  }
}

/**
 * Runs to chart: the server's history when it has points; otherwise a trace this page records
 * from its own polls, so the charts are never blank while the room is live.
 */
export function useRuns(room: ApiRoom | null, history: ApiHistory | null): HistoryRun[] {
  const [local, setLocal] = useState<HistoryRun | null>(null)
  const lastKey = useRef('')
  useEffect(() => {
    if (!room) return
    const s = summarize(room)
    const key = `${room.run ?? 0}:${s.globalStep}:${s.accuracy}:${s.loss}`
    if (key === lastKey.current) return
    lastKey.current = key
    const wall = Date.now()
    const point: HistoryPoint = {
      t: 0, loss: s.loss, accuracy: s.accuracy, globalStep: s.globalStep, bytes: s.bytes,
      peers: s.peers, lr: s.lr, h: s.h, consensus: s.consensus,
    }
    setLocal((prev) => {
      const run = room.run ?? 0
      if (!prev || prev.run !== run) return { run, config: room.config, started: wall, points: [point], diverged: room.diverged ?? null }
      return { ...prev, diverged: room.diverged ?? null, points: [...prev.points.slice(-1999), { ...point, t: (wall - prev.started) / 1000 }] }
    })
  }, [room])
  const server = history?.runs.filter((r) => r.points.length > 0) ?? []
  if (server.length) return server
  return local ? [local] : []
}
