import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HistoryResponse } from '../../shared/protocol/history'
import type { RoomResponse } from '../../shared/protocol/http'
import { leaseKey } from '../../signaling-server/redis-store'
import { startCluster, type Cluster } from '../../tools/cluster'
import { createRoom, postControl, roomUrl } from '../support/e2e'
import { startNodePeer, type NodePeer } from '../support/node-peer'
import { getJson, waitFor } from '../support/server'

/**
 * Two signaling processes + Redis + haproxy (tools/cluster.ts, deploy/haproxy.cfg), all real
 * and on loopback. Three Node volunteers train one room through the balancer; the process that
 * serves the room is SIGKILLed mid-training. Every volunteer must be back in the roster under
 * the same identity, the room's state (config, run, host token, history) must be intact on the
 * surviving process, and training must go on. Then the killed process comes back and the room
 * stays reachable through the balancer.
 */

/** The bound docs/deploy.md states: lease (6 s) + reconnect backoff + rejoin, on a loaded 2-core machine. */
const BACK_IN_ROSTER_MS = 45_000

let cluster: Cluster
const peers: NodePeer[] = []
let redis: Redis

beforeAll(async () => {
  cluster = await startCluster({ workers: 2 })
  redis = new Redis(cluster.redisUrl, { maxRetriesPerRequest: 2 })
}, 120_000)

afterAll(async () => {
  for (const p of peers) p.kill()
  await redis?.quit().catch(() => undefined)
  await cluster?.close()
})

describe('several server processes behind haproxy', () => {
  it('SIGKILL of the process serving a room: every volunteer is back in the roster, nothing of the room is lost, training goes on', async () => {
    const server = { url: cluster.url }
    const { room, hostToken, code } = await createRoom(server, {
      room: 'failover', config: { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp', lr: 0.05 },
    })
    const url = roomUrl(server, room)
    // One volunteer joins by the join code, as students do: the cluster routes it to the room's name.
    peers.push(startNodePeer(cluster.url, room, 'n1', ['--backend', 'wasm'], { quiet: false }))
    peers.push(startNodePeer(cluster.url, room, 'n2', ['--backend', 'wasm'], { quiet: false }))
    peers.push(startNodePeer(cluster.url, code, 'n3', ['--backend', 'wasm'], { quiet: false }))
    const dump = async () => `room: ${await getJson<RoomResponse>(url).then(({ status, body }) => JSON.stringify({ status, epoch: body.epoch, peers: body.peers?.map((p) => [p.name, p.id, p.stage, p.step]), joining: body.joining?.map((p) => [p.name, p.id, p.stage]) }), (e: unknown) => String(e))}; ` +
      `peers: ${peers.map((p) => p.output().slice(-3000)).join(' | ')}; workers: ${cluster.workers.map((w) => w.output().slice(-600)).join(' | ')}`
    const training = await waitFor('three volunteers training through the balancer', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      return status === 200 && body.peers.length === 3 && body.peers.every((p) => p.stage === 'training' && p.step >= 15) ? body : undefined
    }, 180_000).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
    const ids = training.peers.map((p) => p.id).sort()
    // Pages and the host reach the room by its code too (join links, QR codes): wherever the
    // balancer sends that, it ends at the room (a 307 to its name when needed).
    const byCode = await getJson<RoomResponse>(roomUrl(server, code))
    expect(byCode.status).toBe(200)
    expect(byCode.body.peers.map((p) => p.id).sort()).toEqual(ids)
    const stepBefore = Math.max(...training.peers.map((p) => p.step))
    const pointsBefore = (await getJson<HistoryResponse>(`${url}/history`)).body.runs.at(-1)!.points.length

    // The lease names the process serving the room (its value starts with that process's pid).
    const holder = await redis.get(leaseKey(room))
    const victim = cluster.workers.findIndex((w) => holder?.startsWith(`${w.proc.pid}-`))
    expect(victim, `lease ${holder}`).toBeGreaterThanOrEqual(0)
    const killedAt = Date.now()
    await cluster.kill(victim, 'SIGKILL')

    const back = await waitFor('every volunteer back in the roster on the other process', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      if (status !== 200) return undefined
      const now = body.peers.map((p) => p.id).sort()
      return JSON.stringify(now) === JSON.stringify(ids) ? body : undefined
    }, BACK_IN_ROSTER_MS, 250).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
    const recoveredMs = Date.now() - killedAt
    console.log(`cluster failover: all ${ids.length} volunteers back in the roster ${recoveredMs} ms after SIGKILL`)
    const newHolder = await redis.get(leaseKey(room))
    expect(newHolder).not.toBe(holder)
    expect(newHolder?.startsWith(`${cluster.workers[1 - victim].proc.pid}-`)).toBe(true)
    // Nothing of the room was lost: its config, run, history and host token moved with it.
    expect(back.run).toBe(training.run)
    expect(back.config.lr).toBe(0.05)
    expect(back.code).toBe(code)
    const hist = (await getJson<HistoryResponse>(`${url}/history`)).body
    expect(hist.runs.at(-1)!.points.length).toBeGreaterThanOrEqual(pointsBefore)
    expect((await postControl(server, room, { action: 'pause' }, 'not-the-token')).status).toBe(403)
    expect((await postControl(server, room, { action: 'pause' }, hostToken)).status).toBe(200)
    expect((await postControl(server, room, { action: 'resume' }, hostToken)).status).toBe(200)

    // Training goes on past where it was.
    await waitFor('training to go on after the failover', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return body.peers.length === 3 && body.peers.every((p) => p.stage === 'training') && Math.max(...body.peers.map((p) => p.step)) > stepBefore + 20 ? body : undefined
    }, 120_000).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
    for (const p of peers) expect(p.proc.exitCode).toBeNull()

    // The killed process comes back: the room stays reachable through the balancer (moving
    // back to it if the hash says so) with everyone in it.
    await cluster.restart(victim)
    await waitFor('the room whole again after the process came back', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      return status === 200 && JSON.stringify(body.peers.map((p) => p.id).sort()) === JSON.stringify(ids) ? body : undefined
    }, 90_000, 500).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
  }, 480_000)
})
