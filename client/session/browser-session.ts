// TEMPORARY STUB written by the UI contributor so client/ui compiles; the lead replaces this file.
import type { BackendName } from '../../shared/protocol/signaling'
import { defaultConfig } from '../../shared/config'
import type { SessionHandle, SessionSnapshot } from './types'

export function createBrowserSession(opts: { room: string; backend?: BackendName; name?: string }): SessionHandle {
  let snap: SessionSnapshot = {
    stage: 'training', room: opts.room, self: 'stub-self-0001', config: defaultConfig('dpsgd'), run: 0,
    backend: opts.backend ?? 'wasm', backendReason: opts.backend ? 'forced by ?backend=' : 'measured: wasm 84 steps/s, webgl 39, cpu 19',
    dataProgress: 1, step: 1234, globalStep: 1240, loss: 0.2345, accuracy: 0.9312, samplesPerSec: 2650, stepsPerSec: 82.8,
    samples: 39488, bytesSent: 48_200_000, bytesReceived: 47_900_000, neighbors: ['peer-aaaa1111', 'peer-bbbb2222'],
    peers: ['peer-aaaa1111', 'peer-bbbb2222', 'peer-cccc3333'], lr: 0.05, h: null, consensus: 0.0123, error: null,
    log: ['joined room', 'backend wasm chosen', 'connected to peer-aaaa', 'connected to peer-bbbb', 'averaged with 2 peers'],
  }
  const subs = new Set<(s: SessionSnapshot) => void>()
  const emit = () => subs.forEach((f) => f(snap))
  return {
    snapshot: () => snap,
    subscribe(cb) { subs.add(cb); return () => { subs.delete(cb) } },
    pause() { snap = { ...snap, stage: 'paused' }; emit() },
    resume() { snap = { ...snap, stage: 'training' }; emit() },
    async leave() { snap = { ...snap, stage: 'done' }; emit() },
  }
}
