import { describe, expect, it } from 'vitest'
import type { RoomResponse } from '../../shared/protocol/http'
import { createRoom, roomUrl, serverEnvironment } from '../support/e2e'
import { startNodePeer, type NodePeer } from '../support/node-peer'
import { getJson, waitFor } from '../support/server'

/**
 * A hostile volunteer on the real mesh (docs/security.md "Attacks on training"): four honest
 * Node volunteers and one hostile one train MNIST over real WebRTC in a robust room. The hostile
 * one sends a scaled model, then (a new process) poisons its clock, then floods its neighbours.
 * The honest peers keep training into the accuracy band a clean run of this room reaches, their
 * clocks stay plausible, and nobody honest is evicted.
 */

const env = serverEnvironment()

/** What four honest mlp volunteers reach on MNIST within this test's steps, attacked or not. */
const ACCURACY_BAND = 0.8

describe('a hostile volunteer on the real mesh (robust room)', () => {
  it('scaled model, clock poisoning, message flood: honest peers train on and none is evicted', async () => {
    const { server, peers } = env
    const { room } = await createRoom(server, { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', robust: 'on' })
    const url = roomUrl(server, room)
    const view = async () => (await getJson<RoomResponse>(url)).body
    const state = async () => JSON.stringify(await view()).slice(0, 4000)
    const honest = ['h1', 'h2', 'h3', 'h4'].map((name) => startNodePeer(server.url, room, name, ['--backend', 'wasm']))
    peers.push(...honest)
    const honestPeers = (v: RoomResponse) => v.peers.filter((p) => p.name?.startsWith('h'))
    await waitFor('four honest volunteers training', async () => {
      const hs = honestPeers(await view())
      return hs.length === 4 && hs.every((p) => p.step > 5)
    }, 180_000, 1000).catch(async (e) => { throw new Error(`${(e as Error).message}; ${await state()}`) })

    let hostile: NodePeer | null = null
    for (const attack of ['scaled', 'clock', 'flood']) {
      hostile?.kill()
      hostile = startNodePeer(server.url, room, `x-${attack}`, ['--backend', 'wasm', '--attack', attack])
      peers.push(hostile)
      const before = Math.min(...honestPeers(await view()).map((p) => p.step))
      // It joins, attacks while in the roster (its neighbours may evict it), and the honest ones step on.
      await waitFor(`x-${attack} joined`, async () => {
        const v = await view()
        return v.peers.some((p) => p.name === `x-${attack}`) || v.evictions.some((e) => e.name === `x-${attack}`)
      }, 120_000, 500).catch(async (e) => { throw new Error(`${(e as Error).message}; ${await state()}`) })
      await waitFor(`honest peers 40 steps on under '${attack}'`, async () => {
        const hs = honestPeers(await view())
        return hs.length === 4 && hs.every((p) => p.step >= before + 40)
      }, 240_000, 1000).catch(async (e) => { throw new Error(`${(e as Error).message}; ${await state()}; hostile: ${hostile?.output().slice(-600)}`) })
      const v = await view()
      const ids = honestPeers(v).map((p) => p.id)
      expect(v.evictions.filter((e) => ids.includes(e.peer)), `evictions after '${attack}': ${JSON.stringify(v.evictions)}`).toEqual([])
      // A poisoned clock (2^40) never reached an honest peer's schedule.
      for (const p of honestPeers(v)) expect(p.globalStep, `${p.name} after '${attack}'`).toBeLessThan(1e6)
      for (const p of honestPeers(v)) expect(Number.isFinite(p.loss ?? 0), `${p.name} loss`).toBe(true)
    }
    hostile?.kill()
    const done = await waitFor('honest accuracy in the clean band', async () => {
      const hs = honestPeers(await view())
      return hs.length === 4 && hs.every((p) => (p.accuracy ?? 0) >= ACCURACY_BAND) && hs
    }, 240_000, 1000).catch(async (e) => { throw new Error(`${(e as Error).message}; ${await state()}`) })
    expect(done.every((p) => p.stage === 'training' || p.stage === 'stalled')).toBe(true)
  }, 900_000)

  it('ssgd with robust on all-gathers over real WebRTC: a scaled attacker is clipped away and honest peers train', async () => {
    const { server, peers } = env
    const { room } = await createRoom(server, { algorithm: 'ssgd', dataset: 'mnist', model: 'mlp', robust: 'on' })
    const url = roomUrl(server, room)
    const view = async () => (await getJson<RoomResponse>(url)).body
    const state = async () => JSON.stringify(await view()).slice(0, 4000)
    const honest = ['s1', 's2', 's3'].map((name) => startNodePeer(server.url, room, name, ['--backend', 'wasm']))
    const hostile = startNodePeer(server.url, room, 'x-scaled', ['--backend', 'wasm', '--attack', 'scaled'])
    peers.push(...honest, hostile)
    const honestPeers = (v: RoomResponse) => v.peers.filter((p) => p.name?.startsWith('s'))
    const done = await waitFor('honest ssgd peers in the accuracy band with the attacker in the group', async () => {
      const v = await view()
      const hs = honestPeers(v)
      return hs.length === 3 && hs.every((p) => (p.accuracy ?? 0) >= ACCURACY_BAND) && v
    }, 300_000, 1000).catch(async (e) => { throw new Error(`${(e as Error).message}; ${await state()}; hostile: ${hostile.output().slice(-600)}`) })
    const ids = honestPeers(done).map((p) => p.id)
    expect(done.evictions.filter((e) => ids.includes(e.peer))).toEqual([])
    for (const p of honestPeers(done)) expect(Number.isFinite(p.loss ?? 0)).toBe(true)
    hostile.kill()
  }, 600_000)
})
