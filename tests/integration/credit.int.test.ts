import type { Socket } from 'socket.io-client'
import { describe, expect, it } from 'vitest'
import { generateIdentityKeys, identityFromKeys, type Identity } from '../../shared/identity'
import type { RoomResponse } from '../../shared/protocol/http'
import { creditSchema, type Credit } from '../../shared/protocol/signaling'
import { createRoom, roomUrl, serverEnvironment } from '../support/e2e'
import { getJson } from '../support/server'
import { nextEvent, testSockets } from '../support/socket-events'

/**
 * A volunteer's credit over real sockets (signaling-server/rooms.ts credit(), handlers.ts
 * sendCredit): the server tells each volunteer its samples, place and share in the run, keeps
 * them under its key-derived id across a reconnect, caps a made-up count, names its neighbours
 * and normalises the names it is given.
 */

const env = serverEnvironment()
const connect = testSockets()

type Any = Record<string, any> // test-side view of socket payloads

async function volunteer(room: string, identity: Identity, name?: string): Promise<{ s: Socket; id: string; joinCredit: Credit }> {
  const s = connect(env.server.url)
  const hello = nextEvent<Any>(s, 'hello', 'hello with a challenge')
  await nextEvent(s, 'connect', 'connect')
  const { challenge } = await hello
  const credit = nextEvent<unknown>(s, 'credit', 'credit at join')
  const ack = await s.timeout(10_000).emitWithAck('join', { v: 1, room, role: 'volunteer', name, identity: await identity.prove(challenge, room) })
  expect(ack.ok, JSON.stringify(ack)).toBe(true)
  const listed = nextEvent<Any>(s, 'membership', 'roster lists it', (m) => m.peers.includes(ack.self))
  s.emit('ready', { v: 1 })
  await listed
  return { s, id: ack.self, joinCredit: creditSchema.parse(await credit) }
}

/** Reports like a training tab (every 250 ms here) until the server's credit passes `pred`. */
async function reportUntil(s: Socket, report: () => Any, pred: (c: Credit) => boolean, what: string): Promise<Credit> {
  const credit = nextEvent<unknown>(s, 'credit', what, (c) => pred(creditSchema.parse(c)))
  const timer = setInterval(() => s.emit('report', report()), 250)
  s.emit('report', report())
  try {
    return creditSchema.parse(await credit)
  } finally {
    clearInterval(timer)
  }
}

const base = { v: 1, loss: 1, accuracy: 0.5, backend: 'wasm', samplesPerSec: 100, bytesSent: 0, bytesReceived: 0, neighbors: [] as string[] }
const view = async (room: string) => (await getJson<RoomResponse>(roomUrl(env.server, room))).body

describe('credit over sockets', () => {
  it('follows the reports, survives a reconnect under the same key, and cuts a made-up count', async () => {
    const { room, config } = await createRoom(env.server, {})
    const batch = (config as { batchSize: number }).batchSize
    const me = await identityFromKeys(await generateIdentityKeys(false))
    const first = await volunteer(room, me, '  Ada\n<b>Lovelace</b>\u202e ')
    expect(first.joinCredit).toMatchObject({ samples: 0, rank: 0 })
    expect((await view(room)).peers[0].name).toBe('Ada <b>Lovelace</b>')

    const c1 = await reportUntil(first.s, () => ({ ...base, step: 10, samples: 10 * batch }), (c) => c.samples > 0, 'credited')
    expect(c1).toMatchObject({ samples: 10 * batch, rank: 1, of: 1, share: 1, total: 10 * batch })
    // 1e12 samples claimed for one more step: one minibatch counts.
    const c2 = await reportUntil(first.s, () => ({ ...base, step: 11, samples: 1e12 }), (c) => c.samples > 10 * batch, 'capped')
    expect(c2.samples).toBe(11 * batch)

    // A reload: the same key on a new connection; its counters start from zero, the credit does not.
    first.s.disconnect()
    const again = await volunteer(room, me, 'Ada')
    expect(again.id).toBe(first.id)
    expect(again.joinCredit).toMatchObject({ samples: 11 * batch, rank: 1 })
    const c3 = await reportUntil(again.s, () => ({ ...base, step: 2, samples: 2 * batch }), (c) => c.samples > 11 * batch, 'credited again')
    expect(c3.samples).toBe(13 * batch)
    const r = await view(room)
    expect(r.peers[0]).toMatchObject({ id: me.id, name: 'Ada', samples: 13 * batch })
    expect(r.leaderboard).toEqual([{ id: me.id, name: 'Ada', samples: 13 * batch, share: 1 }])
  })

  it('names a volunteer\'s neighbours and ranks it among the run\'s contributors', async () => {
    const { room, config } = await createRoom(env.server, {})
    const batch = (config as { batchSize: number }).batchSize
    const a = await volunteer(room, await identityFromKeys(await generateIdentityKeys(false)), 'Grace')
    const b = await volunteer(room, await identityFromKeys(await generateIdentityKeys(false)), 'Alan')
    await reportUntil(a.s, () => ({ ...base, step: 20, samples: 20 * batch, neighbors: [b.id] }), (c) => c.samples > 0, 'a credited')
    const cb = await reportUntil(b.s, () => ({ ...base, step: 5, samples: 5 * batch, neighbors: [a.id] }), (c) => c.samples > 0, 'b credited')
    expect(cb).toMatchObject({ rank: 2, of: 2, samples: 5 * batch, total: 25 * batch, neighbours: [{ id: a.id, name: 'Grace' }] })
    expect(cb.share).toBeCloseTo(0.2)
  })
})
