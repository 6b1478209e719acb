import { useEffect, useRef, useState } from 'react'
import { z } from 'zod'
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
  /** Training samples per second, the whole swarm together. */
  samplesPerSec: number
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
    samplesPerSec: peers.reduce((a, p) => a + (finite(p.samplesPerSec) ? p.samplesPerSec : 0), 0),
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

/** One volunteer's contribution to the current run: training samples and their share of all of them. */
export interface LeaderboardEntry {
  id: string
  name: string | null
  samples: number
  share: number
}

/**
 * The room view's `leaderboard` (the server's credit: top 20 of this run, volunteers that left
 * included, kept across reloads by the stable volunteer id). Read loosely: servers before it
 * send none, and then the board comes from the roster's own `samples` counters.
 */
const serverLeaderboardSchema = z.array(z.object({
  id: z.string(), name: z.string().nullable().catch(null), samples: z.number().min(0), share: z.number().min(0).max(1),
})).max(256)

/** Volunteers by samples contributed this run, most first; `source` says whose numbers they are. */
export function leaderboard(room: ApiRoom | null): { entries: LeaderboardEntry[]; source: 'server' | 'peers' } {
  const fromServer = serverLeaderboardSchema.safeParse((room as { leaderboard?: unknown } | null)?.leaderboard)
  if (fromServer.success) return { entries: [...fromServer.data].sort((a, b) => b.samples - a.samples), source: 'server' }
  const peers = room?.peers ?? []
  const total = peers.reduce((a, p) => a + (finite(p.samples) ? p.samples : 0), 0)
  const entries = peers
    .map((p) => ({ id: p.id, name: p.name ?? null, samples: finite(p.samples) ? p.samples : 0 }))
    .map((e) => ({ ...e, share: total > 0 ? e.samples / total : 0 }))
    .sort((a, b) => b.samples - a.samples || (a.id < b.id ? -1 : 1))
  return { entries, source: 'peers' }
}

/**
 * Whether the learning rate changes during the shown runs: a schedule other than constant, a
 * warmup, or reported values that differ within a run (SSGD's linear scaling follows the group).
 * A constant rate gets one line of text instead of a chart.
 */
export function lrVaries(runs: readonly HistoryRun[]): boolean {
  return runs.some((r) => {
    const sched = (r.config as { schedule?: { kind?: string; warmupSteps?: number } }).schedule
    if (sched && (sched.kind !== 'constant' || (sched.warmupSteps ?? 0) > 0)) return true
    const lrs = r.points.map((p) => p.lr).filter(finite)
    if (!lrs.length) return false
    const lo = Math.min(...lrs)
    const hi = Math.max(...lrs)
    return hi - lo > 1e-9 * Math.max(1, Math.abs(hi))
  })
}

/** The constant learning rate of each shown run (the last reported value, else the config's). */
export function constantLrs(runs: readonly HistoryRun[]): { run: number; lr: number }[] {
  return runs.map((r) => {
    const reported = r.points.map((p) => p.lr).filter(finite).at(-1)
    return { run: r.run, lr: reported ?? r.config.lr }
  })
}
