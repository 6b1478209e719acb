import { describe, expect, it } from 'vitest'
import { defaultConfig } from '../config'
import {
  awaySchema, checkpointSchema, joinSchema, membershipSchema, peerCommandSchema, relayedSignalSchema, reportSchema, signalSchema, suspectSchema,
} from './signaling'
import { PROTOCOL_VERSION as v } from './version'

const report = {
  v, step: 10, loss: 0.5, accuracy: 0.9, backend: 'wasm', samplesPerSec: 100, bytesSent: 1, bytesReceived: 2, neighbors: ['a'],
}

describe('signaling schemas', () => {
  it('accept well-formed events and fill defaults', () => {
    expect(joinSchema.parse({ v, room: 'demo-1', role: 'volunteer' }).agent).toBe('browser')
    expect(signalSchema.safeParse({ v, to: 'peer', data: { type: 'offer', sdp: 'x' } }).success).toBe(true)
    const r = reportSchema.parse(report)
    expect(r.stage).toBe('training')
    expect(r.links).toEqual({})
    expect(suspectSchema.safeParse({ v, peer: 'p', reason: 'missed 5 deadlines' }).success).toBe(true)
    expect(relayedSignalSchema.safeParse({ v, from: 'p', data: {} }).success).toBe(true)
    expect(peerCommandSchema.parse({ v, type: 'slow', factor: 4 })).toEqual({ v, type: 'slow', factor: 4 })
    expect(awaySchema.parse({ v, reason: 'hidden' })).toEqual({ v, reason: 'hidden' })
    expect(reportSchema.parse({ ...report, slowFactor: 4, addedLatencyMs: 200 })).toMatchObject({ slowFactor: 4, addedLatencyMs: 200 })
    expect(checkpointSchema.safeParse({ v, step: 3, schemaHash: 'abc', params: new Uint8Array(8) }).success).toBe(true)
    const m = { v, room: 'r', epoch: 2, peers: ['a', 'b'], roles: { ps: null }, config: defaultConfig(), run: 1, paused: false }
    expect(membershipSchema.parse(m).peers).toEqual(['a', 'b'])
  })

  it.each([
    ['wrong version', joinSchema, { v: 2, room: 'demo', role: 'volunteer' }],
    ['room with a slash', joinSchema, { v, room: '../etc', role: 'volunteer' }],
    ['unknown role', joinSchema, { v, room: 'demo', role: 'admin' }],
    ['signal without target', signalSchema, { v, data: {} }],
    ['signal with string data', signalSchema, { v, to: 'p', data: 'sdp' }],
    ['report with NaN-free negative bytes', reportSchema, { ...report, bytesSent: -1 }],
    ['report with accuracy > 1', reportSchema, { ...report, accuracy: 1.5 }],
    ['report with unknown backend', reportSchema, { ...report, backend: 'tpu' }],
    ['report with fractional step', reportSchema, { ...report, step: 1.5 }],
    ['away for no known reason', awaySchema, { v, reason: 'bored' }],
    ['away without a reason', awaySchema, { v }],
    ['report with a slow factor below 1', reportSchema, { ...report, slowFactor: 0.5 }],
    ['report with negative added latency', reportSchema, { ...report, addedLatencyMs: -1 }],
    ['command with unknown type', peerCommandSchema, { v, type: 'explode' }],
    ['slow factor below 1', peerCommandSchema, { v, type: 'slow', factor: 0.5 }],
    ['checkpoint params as array', checkpointSchema, { v, step: 1, schemaHash: 'h', params: [1, 2] }],
    ['membership with bad config', membershipSchema, { v, room: 'r', epoch: 0, peers: [], roles: { ps: null }, config: { algorithm: 'x' }, run: 0, paused: false }],
  ] as const)('reject %s', (_name, schema, payload) => {
    expect(schema.safeParse(payload).success).toBe(false)
  })
})
