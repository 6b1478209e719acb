import { describe, expect, it } from 'vitest'
import type { HistoryResponse } from '../../shared/protocol/history'
import type { RoomResponse } from '../../shared/protocol/http'
import { createRoom, postControl, roomUrl, serverEnvironment } from '../support/e2e'
import { startNodePeer } from '../support/node-peer'
import { getJson, waitFor } from '../support/server'

/**
 * A run that diverges on the real mesh: two Node volunteers (separate processes, WebRTC over
 * loopback) train the MNIST mlp with a learning rate far too large. The room must say so
 * (diverged, with the step and a hint), keep both volunteers (paused, not in 'error'), record it
 * in the run history, and train again when the host starts a new run with a sane rate.
 */

const env = serverEnvironment()

describe('divergence on the real mesh', () => {
  it('the room pauses itself and says why, the volunteers stay, the history records it, a new run trains', async () => {
    const { server, peers } = env
    const { room, hostToken } = await createRoom(server, { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', lr: 50, momentum: 0.9 })
    const url = roomUrl(server, room)
    for (const name of ['n1', 'n2']) peers.push(startNodePeer(server.url, room, name, ['--backend', 'wasm']))
    const state = async () => JSON.stringify((await getJson<RoomResponse>(url)).body)
    const diverged = await waitFor('the room to report a divergence', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return body.diverged && body.peers.length === 2 && body.peers.every((p) => ['diverged', 'paused'].includes(p.stage)) ? body : undefined
    }, 120_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; room: ${await state()}; peer output: ${peers.map((p) => p.output().slice(-800)).join(' | ')}`)
    })
    expect(diverged.paused).toBe(true)
    expect(diverged.diverged!.reason).toMatch(/loss|finite/)
    expect(diverged.peers.some((p) => p.stage === 'diverged')).toBe(true)
    for (const p of peers) expect(p.proc.exitCode).toBeNull()
    const hist = (await getJson<HistoryResponse>(`${url}/history`)).body
    expect(hist.runs[0].diverged).toMatchObject({ step: diverged.diverged!.step })

    const ctl = await postControl(server, room, { action: 'new-run', config: { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', lr: 0.05 } }, hostToken)
    expect(ctl.status).toBe(200)
    const again = await waitFor('both volunteers training in run 2', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return body.run === 2 && body.peers.length === 2 && body.peers.every((p) => p.stage === 'training' && p.step >= 20) ? body : undefined
    }, 120_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; room: ${await state()}`)
    })
    expect(again.diverged).toBeNull()
    expect(again.paused).toBe(false)
  }, 300_000)
})
