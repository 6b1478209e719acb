import type { Browser, Page } from 'playwright-core'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoomResponse } from '../../shared/protocol/http'
import { leaseKey } from '../../signaling-server/redis-store'
import { startCluster, type Cluster } from '../../tools/cluster'
import { launchBrowser, volunteerContext } from '../support/browser'
import { createRoom, roomUrl } from '../support/e2e'
import { startNodePeer, type NodePeer } from '../support/node-peer'
import { getJson, waitFor } from '../support/server'

/**
 * What a class sees behind a balancer: two Chromium tabs open the join link (by the room's
 * code, as the QR code gives it) on haproxy in front of two server processes, a Node volunteer
 * joins by name, and they train one room over real WebRTC. The process serving the room is
 * SIGKILLed: the tabs reconnect through haproxy by themselves, everyone is back in the roster
 * under the same identity and training goes on.
 */

let cluster: Cluster
let browser: Browser
let redis: Redis
const peers: NodePeer[] = []
const pages: Page[] = []

beforeAll(async () => {
  cluster = await startCluster({ workers: 2 })
  browser = await launchBrowser()
  redis = new Redis(cluster.redisUrl, { maxRetriesPerRequest: 2 })
}, 120_000)

afterAll(async () => {
  for (const p of peers) p.kill()
  await browser?.close()
  await redis?.quit().catch(() => undefined)
  await cluster?.close()
})

describe('tabs behind haproxy and two server processes', () => {
  it('tabs joining by code train with a Node peer; SIGKILL of the room\'s process: all back, same ids, training goes on', async () => {
    const server = { url: cluster.url }
    const { room, code } = await createRoom(server, { room: 'cluster-class', config: { algorithm: 'dpsgd', topology: 'ring', dataset: 'mnist', model: 'mlp' } })
    const url = roomUrl(server, room)
    for (let i = 0; i < 2; i++) {
      const ctx = await volunteerContext(browser, cluster.url)
      const page = await ctx.newPage()
      page.on('pageerror', (e) => console.error(`[tab ${i}] pageerror`, e.message))
      await page.goto(`${cluster.url}/?room=${code}&backend=wasm&name=tab${i}`)
      pages.push(page)
    }
    peers.push(startNodePeer(cluster.url, room, 'node0', ['--backend', 'wasm'], { quiet: false }))
    const dump = async () => `room: ${await getJson<RoomResponse>(url).then(({ status, body }) => JSON.stringify({ status, epoch: body.epoch, peers: body.peers?.map((p) => [p.name, p.id, p.stage, p.step]), joining: body.joining?.map((p) => [p.name, p.id, p.stage]) }), (e: unknown) => String(e))}; ` +
      `node: ${peers[0].output().slice(-3000)}; workers: ${cluster.workers.map((w) => w.output().slice(-600)).join(' | ')}`
    const training = await waitFor('two tabs and a Node peer training', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      return status === 200 && body.peers.length === 3 && body.peers.every((p) => p.stage === 'training' && p.step >= 10) ? body : undefined
    }, 240_000, 1000).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
    expect(training.peers.filter((p) => p.agent === 'browser')).toHaveLength(2)
    const ids = training.peers.map((p) => p.id).sort()
    const stepBefore = Math.max(...training.peers.map((p) => p.step))

    const holder = await redis.get(leaseKey(room))
    const victim = cluster.workers.findIndex((w) => holder?.startsWith(`${w.proc.pid}-`))
    expect(victim, `lease ${holder}`).toBeGreaterThanOrEqual(0)
    const killedAt = Date.now()
    await cluster.kill(victim, 'SIGKILL')
    await waitFor('all three back in the roster on the other process', async () => {
      const { status, body } = await getJson<RoomResponse>(url)
      return status === 200 && JSON.stringify(body.peers.map((p) => p.id).sort()) === JSON.stringify(ids) ? body : undefined
    }, 60_000, 250).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
    console.log(`cluster e2e: tabs and Node peer back in the roster ${Date.now() - killedAt} ms after SIGKILL`)
    await waitFor('training going on after the failover', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return body.peers.length === 3 && body.peers.every((p) => p.stage === 'training') && Math.max(...body.peers.map((p) => p.step)) > stepBefore + 10 ? body : undefined
    }, 120_000, 1000).catch(async (e: unknown) => { throw new Error(`${(e as Error).message}; ${await dump()}`) })
  }, 480_000)
})
