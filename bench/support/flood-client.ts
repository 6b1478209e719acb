import { io as connect, type Socket } from 'socket.io-client'

/**
 * One hostile flood for bench/server-flood.ts, in a process of its own so its CPU is not the
 * prober's: forked with `--import tsx`, argv `URL PHASE ROOM MAX_MESSAGE_BYTES` (the server's
 * socket.io buffer, so payloads can be sized just under it and just over it). It connects (and joins) first,
 * sends { ev: 'armed' }, floods for { op: 'go', seconds } and answers { ev: 'done', ... } with
 * what it sent and what came back. The attacks are tests/adversarial/hostile-client.int.test.ts's,
 * run for a duration instead of once. Every socket floods in a closed loop: a burst, then a
 * marker event whose error answer says the server has handled everything before it, so the
 * server always has work queued but the attacker never buffers without bound. A socket the
 * server closes (a message over its buffer) is replaced by a new one, joined again where the
 * attack needs it, as a hostile script would.
 */

export type FloodPhase = 'links' | 'flap' | 'rooms' | 'prejoin' | 'shards' | 'storm'
export type FloodClientMsg =
  | { ev: 'armed'; sockets: number }
  | { ev: 'done'; sent: Record<string, number>; errors: Record<string, number>; extra: Record<string, unknown> }

type Any = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const [url, phase, room, maxArg] = process.argv.slice(2) as [string, FloodPhase, string, string]
const maxMessage = Number(maxArg)
if (!url || !phase || !(maxMessage > 0) || !process.send) throw new Error('flood-client: run it forked with URL PHASE ROOM MAX_MESSAGE_BYTES')

export const REPORT = { v: 1, step: 12, loss: 0.7, accuracy: 0.81, backend: 'wasm', samplesPerSec: 250, bytesSent: 1000, bytesReceived: 900, neighbors: [] as string[] }

const sent: Record<string, number> = {}
const errors: Record<string, number> = {}
const extra: Record<string, unknown> = {}
const count = (m: Record<string, number>, k: string, n = 1) => void (m[k] = (m[k] ?? 0) + n)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function open(): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 30_000 })
  s.on('error', (e: Any) => count(errors, `${e?.event}:${e?.code}`))
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve())
    s.once('connect_error', reject)
  })
  return s
}

async function joinReady(s: Socket, name: string): Promise<Any> {
  const ack = (await s.timeout(30_000).emitWithAck('join', { v: 1, room: name, role: 'volunteer' })) as Any
  if (ack.ok) s.emit('ready', { v: 1 })
  return ack
}

/**
 * Resolves once the server answers a signal to nobody (not-joined or unknown-peer, both 'error'
 * on event 'signal'): per-socket order means everything sent before it was handled. False
 * after `ms` or when the socket is gone.
 */
function settle(s: Socket, ms: number): Promise<boolean> {
  if (!s.connected) return Promise.resolve(false)
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer)
      s.off('error', onError)
      s.off('disconnect', onGone)
      resolve(ok)
    }
    const onError = (e: Any) => { if (e?.event === 'signal') done(true) }
    const onGone = () => done(false)
    const timer = setTimeout(() => done(false), ms)
    s.on('error', onError)
    s.on('disconnect', onGone)
    s.emit('signal', { v: 1, to: 'nobody', data: {} })
    count(sent, 'marker')
  })
}

/** A socket.io EVENT packet for the default namespace, encoded once and written raw (a hostile client need not re-encode). */
const rawEvent = (event: string, payload: unknown) => '2' + JSON.stringify([event, payload])
function sendRaw(s: Socket, packet: string, name: string) {
  s.io.engine.send(packet)
  count(sent, name)
}

const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]


interface Attack {
  /** Sockets (or, for HTTP, concurrent request loops). */
  n: number
  /** A fresh socket for slot k, joined where the attack needs it (null: an HTTP loop). */
  open(k: number): Promise<Socket | null>
  /** One burst from slot k and its marker. */
  round(s: Socket | null, k: number, left: () => number): Promise<void>
}

const sockets: (Socket | null)[] = []
const markerWait = (left: () => number) => Math.max(1000, left() + 5000)
let replaced = 0

function attack(): Attack {
  switch (phase) {
    case 'links': {
      // (a) reports with 330,000 links (~11 MB of JSON each) from joined volunteers.
      const links: Record<string, { sent: number; received: number }> = {}
      for (let i = 0; i < 330_000; i++) links[`p${i}`] = { sent: 1, received: 1 }
      const packet = rawEvent('report', { ...REPORT, links })
      extra.payloadBytes = packet.length
      return {
        n: 4,
        open: async () => { const s = await open(); await joinReady(s, room); return s },
        round: async (s, _k, left) => { sendRaw(s!, packet, 'report'); await settle(s!, markerWait(left)) },
      }
    }
    case 'flap':
      // (b) away/ready cycles, 50 per burst, from many roster members.
      return {
        n: 48,
        open: async () => { const s = await open(); await joinReady(s, room); return s },
        round: async (s, _k, left) => {
          for (let i = 0; i < 50; i++) {
            s!.emit('away', { v: 1, reason: 'paused' })
            s!.emit('ready', { v: 1 })
          }
          count(sent, 'away', 50)
          count(sent, 'ready', 50)
          await settle(s!, markerWait(left))
        },
      }
    case 'rooms': {
      // (c) new rooms by joining new names, from many sockets of one address.
      let created = 0
      let n = 0
      const ackMs: number[] = []
      extra.joinAckMs = ackMs
      return {
        n: 40,
        open,
        round: async (s, k) => {
          const t0 = performance.now()
          count(sent, 'join')
          const ack = (await s!.timeout(30_000).emitWithAck('join', { v: 1, room: `flood-${process.pid}-${k}-${n++}`, role: 'volunteer' })
            .catch(() => ({ ok: false, code: 'timeout' }))) as Any
          ackMs.push(performance.now() - t0)
          if (ack.ok) {
            extra.roomsCreated = ++created
            s!.emit('leave', { v: 1 })
            count(sent, 'leave')
          }
        },
      }
    }
    case 'prejoin': {
      // (d) the largest events socket.io admits, on sockets that never joined: a binary
      // checkpoint, a report of neighbour ids and a signal of one long string, each 64 KiB under
      // the server's buffer; and a checkpoint 1 MiB over it (the transport closes that socket).
      const under = maxMessage - 64 * 1024
      const params = new Uint8Array(under)
      const over = new Uint8Array(maxMessage + 2 ** 20)
      const neighbors = Array.from({ length: Math.floor(under / 10) }, (_, i) => `p${String(i).padStart(6, '0')}`)
      const report = rawEvent('report', { ...REPORT, neighbors })
      const signal = rawEvent('signal', { v: 1, to: 'victim', data: { sdp: 'x'.repeat(under) } })
      extra.payloadBytes = { checkpoint: params.byteLength, report: report.length, signal: signal.length, oversized: over.byteLength }
      let i = 0
      return {
        n: 8,
        open,
        round: async (s, k, left) => {
          const kind = (k + i++) % 4
          if (kind === 0) {
            s!.emit('checkpoint', { v: 1, step: 1, schemaHash: 'x', params })
            count(sent, 'checkpoint')
          } else if (kind === 1) sendRaw(s!, report, 'report')
          else if (kind === 2) sendRaw(s!, signal, 'signal')
          else {
            s!.emit('checkpoint', { v: 1, step: 1, schemaHash: 'x', params: over })
            count(sent, 'checkpoint-oversized')
          }
          await settle(s!, markerWait(left))
        },
      }
    }
    case 'shards': {
      // (e) whole-split MNIST shards (~47 MB each) under ever new seeds, 4 requests at a time.
      let seed = 0
      let bytes = 0
      const ms: number[] = []
      const status: Record<string, number> = {}
      extra.shardMs = ms
      extra.status = status
      return {
        n: 4,
        open: async () => null,
        round: async () => {
          const t0 = performance.now()
          count(sent, 'GET shard')
          try {
            const r = await fetch(`${url}/data/mnist/train?peer=0&peers=1&seed=${seed++}`, { signal: AbortSignal.timeout(120_000) })
            const body = await r.arrayBuffer()
            bytes += body.byteLength
            count(status, String(r.status))
          } catch (e) {
            count(status, (e as Error).name)
          }
          ms.push(performance.now() - t0)
          extra.bytes = bytes
        },
      }
    }
    case 'storm': {
      // (f) suspects against random members and reports naming random neighbours, from 64
      // roster members; an evicted socket joins again once its cooldown allows.
      const back = new Map<number, number>() // slot → when it may try to join again
      let evictions = 0
      let rejoins = 0
      return {
        n: 64,
        open: async (k) => {
          const s = await open()
          s.on('error', (e: Any) => {
            if (e?.code !== 'evicted') return
            extra.evictionsSeen = ++evictions
            back.set(k, Date.now() + 3000)
          })
          if ((await joinReady(s, room)).ok) back.delete(k)
          return s
        },
        round: async (s, k, left) => {
          const at = back.get(k)
          if (at !== undefined) {
            if (Date.now() < at) return void (await sleep(Math.min(at - Date.now(), left())))
            count(sent, 'join')
            const ack = await joinReady(s!, room).catch(() => ({ ok: false, retryAfterMs: 1000 }) as Any)
            if (ack.ok) {
              back.delete(k)
              extra.rejoins = ++rejoins
            } else back.set(k, Date.now() + (typeof ack.retryAfterMs === 'number' ? ack.retryAfterMs : 1000))
            return
          }
          const others = sockets.filter((o) => o && o !== s && o.id).map((o) => o!.id!)
          for (let i = 0; i < 20; i++) {
            s!.emit('suspect', { v: 1, peer: pick(others), reason: 'missed 5 deadlines' })
            const neighbors = [...new Set([pick(others), pick(others), pick(others), pick(others)])]
            s!.emit('report', { ...REPORT, step: 12 + i, neighbors, links: Object.fromEntries(neighbors.map((id) => [id, { sent: 1000, received: 900 }])) })
          }
          count(sent, 'suspect', 20)
          count(sent, 'report', 20)
          await settle(s!, markerWait(left))
        },
      }
    }
  }
}

const a = attack()
// A few at a time: a thousand handshakes at once would be a flood of its own.
for (let k = 0; k < a.n; k += 8) {
  const slots = Array.from({ length: Math.min(8, a.n - k) }, (_, j) => k + j)
  const opened = await Promise.all(slots.map((j) => a.open(j)))
  slots.forEach((j, i) => (sockets[j] = opened[i]))
}
process.send({ ev: 'armed', sockets: sockets.filter(Boolean).length } satisfies FloodClientMsg)

process.on('message', async (m: { op: 'go'; seconds: number }) => {
  if (m.op !== 'go') return
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const end = t0 + m.seconds * 1000
  const left = () => Math.max(0, end - performance.now())
  await Promise.all(sockets.map(async (_, k) => {
    while (left() > 0) {
      const s = sockets[k]
      if (s && !s.connected) {
        // The server closed it (a message over its buffer): a new socket takes the slot.
        extra.socketsReplaced = ++replaced
        sockets[k] = await a.open(k).catch(() => null)
        if (!sockets[k]) return
        continue
      }
      await a.round(s, k, left)
    }
  }))
  const cpu = process.cpuUsage(cpu0)
  // The attacker's own share of the two cores (1 = one full core): what the server did not get.
  extra.attackerCpu = +((cpu.user + cpu.system) / 1000 / (performance.now() - t0)).toFixed(2)
  const msg: FloodClientMsg = { ev: 'done', sent, errors, extra }
  process.send!(msg, () => {
    for (const s of sockets) s?.disconnect()
    process.exit(0)
  })
})
