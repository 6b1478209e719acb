import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignalingClient } from '../client/mesh/signaling-client'
import { deadline } from '../shared/transport'
import { startServer, type RunningServer } from './server'

/**
 * Churn as a class has it: one volunteer leaves while another joins and says ready, all inside
 * one membership batch (MEMBERSHIP_BATCH_MS). The newcomer must follow the room by deltas from
 * the membership it got at join, without asking for a whole one ('sync'), found by the
 * signaling benchmark (docs/benchmarks.md "Signaling load") on nearly every churn join.
 */

const tmp = mkdtempSync(join(tmpdir(), 'tabswarm-batch-'))
let server: RunningServer
const clients: SignalingClient[] = []

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1', dataDir: tmp, staticDir: tmp })
})
afterAll(async () => {
  for (const c of clients) c.close()
  await server?.close()
  rmSync(tmp, { recursive: true, force: true })
})

function volunteer(resyncs: string[], name: string): SignalingClient {
  const c = new SignalingClient(server.url, {
    socket: { transports: ['websocket'], forceNew: true, reconnection: false },
    log: (event) => { if (event === 'signaling.resync') resyncs.push(name) },
  })
  clients.push(c)
  return c
}

describe('a leave and a join in one membership batch', () => {
  it('the newcomer applies the pending delta to what it got at join: no resync, and it sees the room as the others do', async () => {
    const resyncs: string[] = []
    const a = volunteer(resyncs, 'a')
    const b = volunteer(resyncs, 'b')
    for (const c of [a, b]) {
      await c.join({ room: 'batch', role: 'volunteer' }, deadline('join', 10_000))
      await c.enterRoster(deadline('ready', 10_000))
    }
    const newcomer = volunteer(resyncs, 'n')
    await new Promise<void>((resolve) => newcomer.socket.once('connect', () => resolve()))
    // b leaves; the newcomer joins and says ready before the batch goes out.
    b.leave()
    const joined = await newcomer.join({ room: 'batch', role: 'volunteer' }, deadline('join', 10_000))
    const inRoster = await newcomer.enterRoster(deadline('ready', 10_000))
    expect(inRoster.peers).toContain(joined.self)
    expect(inRoster.peers).not.toContain(b.self)
    // Everyone has seen the final roster: a's view equals the newcomer's.
    const view = await new Promise<string[]>((resolve) => {
      const check = (m: { peers: string[] }) => { if (m.peers.length === 2 && m.peers.includes(joined.self)) resolve(m.peers) }
      const last = a.membership
      if (last) check(last)
      a.on('membership', check)
    })
    expect(view).toEqual(inRoster.peers)
    expect(resyncs).toEqual([])
  })
})
