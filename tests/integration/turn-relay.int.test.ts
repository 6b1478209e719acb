import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { candidateTypeOf } from '../../client/mesh/connectivity'
import type { RoomResponse } from '../../shared/protocol/http'
import { deadline } from '../../shared/transport'
import { startServer, type RunningServer } from '../../signaling-server/server'
import { turnCredential } from '../../signaling-server/turn'
import { createRoom, roomUrl } from '../support/e2e'
import { cleanup, getJson, waitFor } from '../support/server'
import { addServiceAddress, childNamespace, startTurnServer, turnTestUnavailable, type ChildNamespace, type TurnServer } from '../support/turn'

/**
 * TURN relays with server-issued credentials, on real coturn (`use-auth-secret`):
 *
 *   namespace A (10.99.1.2) ──veth── test namespace ──veth── namespace B (10.99.2.2)
 *                                    10.99.0.1: coturn + signaling server
 *
 * A and B each route only to 10.99.0.1; the test namespace does not forward, so they have no
 * path to each other. Two Node volunteers (one per namespace) train a room with
 * `iceTransportPolicy: 'relay'` using the TURN credentials the signaling server issued them;
 * their reports must name a relay pair. Credentials that are forged or expired allocate nothing.
 */

const SECRET = 'tabswarm-turn-relay-test'
const SERVICE = '10.99.0.1'
const unavailable = turnTestUnavailable()

interface Peer { proc: ChildProcess; output(): string; stop(): Promise<void> }

/** `npm run peer` as a volunteer inside `ns` (cf. tests/support/node-peer.ts, which runs here). */
function startPeerIn(ns: ChildNamespace, server: string, room: string, name: string): Peer {
  const [cmd, args] = ns.exec(process.execPath, ['--import', 'tsx', join(process.cwd(), 'client/node/peer-cli.ts'), '--server', server, '--room', room, '--name', name, '--quiet', '--backend', 'wasm'])
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout?.on('data', (d) => (out = (out + d).slice(-20_000)))
  proc.stderr?.on('data', (d) => (out = (out + d).slice(-20_000)))
  return {
    proc,
    output: () => out,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
      proc.once('exit', () => resolve())
      proc.kill('SIGKILL')
    }),
  }
}

/** Candidate types a relay-only RTCPeerConnection gathers with these ICE servers (here, in the test namespace). */
async function gatherRelayOnly(iceServers: RTCIceServer[]): Promise<string[]> {
  const { default: wrtc } = await import('@roamhq/wrtc')
  const pc = new wrtc.RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' })
  const types: string[] = []
  const signal = deadline('ICE gathering', 30_000)
  try {
    const complete = new Promise<void>((resolve, reject) => {
      pc.onicecandidate = (e: RTCPeerConnectionIceEvent) => {
        if (e.candidate) types.push(candidateTypeOf(e.candidate.candidate) ?? 'unknown')
        else resolve()
      }
      signal.addEventListener('abort', () => reject(signal.reason), { once: true })
    })
    pc.createDataChannel('probe')
    await pc.setLocalDescription(await pc.createOffer())
    await complete
    return types
  } finally {
    pc.close()
  }
}

describe.skipIf(unavailable !== null)('TURN relays between namespaces with no route to each other', () => {
  let turn: TurnServer
  let server: RunningServer
  let serverUrl: string
  let a: ChildNamespace
  let b: ChildNamespace
  const peers: Peer[] = []
  const dataDir = mkdtempSync(join(tmpdir(), 'tabswarm-turn-relay-'))

  beforeAll(async () => {
    addServiceAddress(SERVICE)
    turn = await startTurnServer({ secret: SECRET, host: SERVICE, verbose: true })
    server = await startServer({
      port: 0, host: SERVICE, dataDir, staticDir: dataDir, log: () => {},
      ice: { servers: [], turn: { secret: SECRET, urls: [turn.url], ttlSec: 600 } },
    })
    serverUrl = `http://${SERVICE}:${server.port}`
    a = childNamespace('tsa', 1, [SERVICE])
    b = childNamespace('tsb', 2, [SERVICE])
  }, 60_000)

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()))
    a?.close()
    b?.close()
    await server?.close()
    await turn?.stop()
    cleanup(dataDir)
  })

  it('the namespaces reach the service address and not each other', () => {
    expect(a.probe('ip', ['route', 'get', b.address]).output).toMatch(/unreachable/i)
    expect(b.probe('ip', ['route', 'get', a.address]).output).toMatch(/unreachable/i)
    expect(a.probe('ip', ['route', 'get', SERVICE]).status).toBe(0)
  })

  it("two volunteers train over relayed candidates with the server's credentials ('relay' room)", async () => {
    const { room } = await createRoom({ url: serverUrl }, { algorithm: 'dpsgd', topology: 'ring', model: 'mlp', iceTransportPolicy: 'relay' })
    peers.push(startPeerIn(a, serverUrl, room, 'in-a'), startPeerIn(b, serverUrl, room, 'in-b'))
    const url = roomUrl({ url: serverUrl }, room)
    const relayed = (v: RoomResponse) => v.peers.length === 2 && v.peers.every((p) => {
      const other = v.peers.find((q) => q.id !== p.id)!
      const ice = p.links[other.id]?.ice
      return p.stage === 'training' && p.step >= 10 && ice?.local === 'relay' && ice.remote === 'relay'
    })
    const first = await waitFor('both volunteers training over a relay pair', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return relayed(body) ? body : undefined
    }, 180_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}; room: ${JSON.stringify((await getJson(url)).body).slice(0, 3000)}; peers: ${peers.map((p) => p.output().slice(-1500)).join(' | ')}; coturn: ${turn.log().slice(-1500)}`)
    })
    for (const p of first.peers) {
      const ice = Object.values(p.links)[0].ice!
      // Relay policy: nothing but relay candidates was gathered, and the link measured a round trip.
      expect(ice.gathered).toEqual(['relay'])
      expect(p.bytesReceived).toBeGreaterThan(0)
    }
    // Steps advance over the relay.
    const before = Math.min(...first.peers.map((p) => p.step))
    await waitFor('steps advancing over the relay', async () => {
      const { body } = await getJson<RoomResponse>(url)
      return relayed(body) && body.peers.every((p) => p.step >= before + 20) ? body : undefined
    }, 120_000)
    // coturn allocated for each volunteer under the username the server issued it (`<expiry>:<peer id>`).
    for (const p of first.peers) expect(turn.log()).toMatch(new RegExp(`user <\\d+:${p.id}>: incoming packet ALLOCATE processed, success`))
  }, 330_000)

  it('forged or expired credentials allocate no relay; fresh ones do', async () => {
    const now = Date.now()
    const fresh = turnCredential(SECRET, 'probe', 600, now)
    const forged = turnCredential('not-the-secret', 'probe', 600, now)
    const expired = turnCredential(SECRET, 'probe', -60, now)
    const server = (c: { username: string; credential: string }): RTCIceServer[] => [{ urls: turn.url, username: c.username, credential: c.credential }]
    expect(await gatherRelayOnly(server(fresh))).toContain('relay')
    const logBefore = turn.log().length
    expect(await gatherRelayOnly(server(forged))).toEqual([])
    expect(await gatherRelayOnly(server(expired))).toEqual([])
    // coturn refused both usernames (an expired one has no valid credential by definition).
    const log = turn.log().slice(logBefore)
    for (const c of [forged, expired]) expect(log).toContain(`check_stun_auth: Cannot find credentials of user <${c.username}>`)
  }, 120_000)
})

describe.skipIf(unavailable === null)('TURN relays (skipped)', () => {
  it.skip(`cannot run here: ${unavailable}`, () => {})
})
