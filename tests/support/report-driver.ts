import { io, type Socket } from 'socket.io-client'
import { PROTOCOL_VERSION } from '../../shared/protocol/version'

/**
 * A volunteer's socket traffic without a model: a real socket.io client that joins, becomes
 * ready and reports a step that grows every `everyMs`, as a training tab does (a report every
 * 500 ms). It gives spectator tests and the spectator-cost bench a live room at no CPU cost.
 */
export interface ReportingVolunteer {
  socket: Socket
  step(): number
  stop(): void
}

/** Resolves once the volunteer is in the roster and has sent its first report. */
export async function startReportingVolunteer(url: string, room: string, name: string, opts: { everyMs?: number; samplesPerStep?: number } = {}): Promise<ReportingVolunteer> {
  const everyMs = opts.everyMs ?? 500
  const perStep = opts.samplesPerStep ?? 32
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  const joined = await new Promise<{ ok: boolean; message?: string }>((resolve) => {
    socket.on('connect', () => socket.emit('join', { v: PROTOCOL_VERSION, room, role: 'volunteer', name, agent: 'node' }, resolve))
  })
  if (!joined.ok) throw new Error(`volunteer ${name} could not join ${room}: ${joined.message}`)
  socket.emit('ready', { v: PROTOCOL_VERSION })
  let step = 0
  const report = () => {
    step += 1
    socket.emit('report', {
      v: PROTOCOL_VERSION, step, globalStep: step, loss: 2.3 / (1 + step / 50), accuracy: Math.min(0.98, 0.1 + step / 200),
      backend: 'wasm', samplesPerSec: (perStep * 1000) / everyMs, stepsPerSec: 1000 / everyMs, samples: step * perStep,
      bytesSent: step * 1000, bytesReceived: step * 1000, neighbors: [], lr: 0.05, stage: 'training',
    })
  }
  report()
  const timer = setInterval(report, everyMs)
  return {
    socket,
    step: () => step,
    stop: () => {
      clearInterval(timer)
      socket.disconnect()
    },
  }
}
