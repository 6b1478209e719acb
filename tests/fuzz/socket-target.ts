import fc from 'fast-check'
import { io as connect, type Socket } from 'socket.io-client'
import { defaultConfig } from '../../shared/config'
import { modelLayout } from '../../shared/model-shapes'
import * as signaling from '../../shared/protocol/signaling'
import { AWAY_REASONS, BACKENDS, PEER_STAGES, serverErrorSchema, type ClientToServerEvents } from '../../shared/protocol/signaling'
import { EVENT_RATE_LIMITS } from '../../signaling-server/handlers'
import {
  HOSTILE_KEYS, Tally, checkParams, jsonish, nastyValue, show, toResult, trackProcessFailures, withOwnKey, withoutKey,
  type FuzzOptions, type TargetResult,
} from './common'
import { healthProblem, startFuzzServer } from './server-harness'

/**
 * Every socket event handler (signaling-server/handlers.ts) over real socket.io connections to
 * the real server on loopback. One case is a short sequence of events, each sent fire-and-forget
 * from one of a few sockets: valid payloads (joins to a few shared rooms, ready, reports, signals
 * and suspicions naming the other sockets, checkpoints of the room model's exact size) and
 * damaged ones (wrong types, non-finite and out-of-range numbers, unknown keys, binary where
 * JSON is expected, nothing at all).
 *
 * Every SYNC_EVERY cases each socket that sent something waits for a marker round trip (an ack
 * on the same ordered socket), so every answer to what it sent has arrived and been checked:
 *  - no handler threw: no 'internal' error code, nothing logged as a handler failure;
 *  - every 'error' event and every refusing ack has a code and a non-empty message, and a
 *    'bad-request' names the field: the message starts with `payload:` or one of the event's
 *    fields (handlers.ts describeIssue);
 *  - no unhandled rejection or uncaught exception in the process;
 *  - afterwards, /healthz still answers.
 *
 * Rate limits: each socket's token buckets are mirrored here (their bursts, EVENT_RATE_LIMITS);
 * a socket whose budget for the next event is spent is replaced by a fresh connection (which
 * also exercises the disconnect handler), so most events reach their handler. A few cases send
 * past the budget on purpose: 'rate-limited' is a fine answer. Rooms come from a small set of
 * names, so the per-address room-creation budget (200) lasts the whole run.
 */

type EventName = keyof ClientToServerEvents
/** Every client event the server rate-limits, i.e. every one it handles (new events are fuzzed as they are added). */
const EVENTS = Object.keys(EVENT_RATE_LIMITS) as EventName[]

const SLOTS = 6
/** Cases between marker round trips (the only awaits; they also bound what is in flight). */
const SYNC_EVERY = 48
const SYNC_TIMEOUT_MS = 20_000
const ROOMS = ['fz-a', 'fz-b', 'fz-c'] as const
/** A placeholder the runner replaces with the id of the socket in that slot (signal `to`, suspect `peer`, neighbours). */
const PEER_REF = '\u0000peer:'

/**
 * Each event's top-level fields, from its schema in shared/protocol/signaling.ts (`<event>Schema`):
 * a 'bad-request' message must start with one of them (or `payload`).
 */
const FIELDS: Record<string, readonly string[]> = Object.fromEntries(EVENTS.map((e) => {
  // 'ice-servers' → iceServersSchema or iceServersRequestSchema (a request whose answer shares the name).
  const camel = e.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
  const all = signaling as Record<string, unknown>
  const schema = (all[`${camel}Schema`] ?? all[`${camel}RequestSchema`]) as { shape?: Record<string, unknown> } | undefined
  return [e, schema?.shape ? Object.keys(schema.shape) : []]
}))

export function namesField(event: string, message: string): boolean {
  const fields = ['payload', ...(FIELDS[event] ?? [])]
  return fields.some((f) => message.startsWith(`${f}: `) || message.startsWith(`${f}.`))
}

// ---- payloads ----

type Obj = Record<string, unknown>
const layout = (() => {
  const c = defaultConfig()
  const l = modelLayout(c.model, c.dataset)
  if (!l.ok) throw new Error(l.error)
  return l
})()

const peerRef = fc.oneof(
  { weight: 3, arbitrary: fc.nat(SLOTS - 1).map((i) => `${PEER_REF}${i}`) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('nobody', '', 'x'.repeat(65))) },
)
const roomName = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom(...ROOMS) },
  // New valid names spend the room-creation budget: rare.
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/) },
  { weight: 3, arbitrary: fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('', 'a b', 'x'.repeat(65), '../x', 'é')) },
)
const slotRef = fc.nat(SLOTS - 1).map((i) => `${PEER_REF}${i}`)
const count = fc.oneof(fc.nat(1_000_000), fc.constantFrom(0, 1e12))
const bytes = fc.oneof(fc.nat(), fc.constantFrom(0, 1e15))
const shortString = fc.string({ maxLength: 40 })

/** Payloads each event's schema accepts (mostly); an event without one here gets `{ v: 1 }`. */
const validPayload: Partial<Record<string, fc.Arbitrary<unknown>>> = {
  join: fc.record({
    v: fc.constant(1), room: roomName, role: fc.constantFrom('volunteer', 'volunteer', 'spectator'), name: fc.string({ maxLength: 40 }),
    agent: fc.constantFrom('browser', 'node'),
    // A forged identity proof (shared/identity.ts): refused, naming the field. Rare: most joins use the socket's id.
    identity: fc.oneof(
      { weight: 8, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ publicKey: fc.string({ minLength: 1, maxLength: 40 }), signature: fc.string({ minLength: 1, maxLength: 40 }) }) },
    ),
  }, { requiredKeys: ['v', 'room', 'role'] }).map((p) => (p.identity === undefined ? withoutKey(p, 'identity') : p)),
  ready: fc.constant({ v: 1 }),
  away: fc.record({ v: fc.constant(1), reason: fc.constantFrom(...AWAY_REASONS) }),
  leave: fc.constantFrom(undefined, {}, { v: 1 }),
  signal: fc.record({
    v: fc.constant(1), to: peerRef,
    data: fc.oneof(fc.constant({ type: 'offer', sdp: 'v=0' }), fc.dictionary(fc.string({ maxLength: 8 }), jsonish, { maxKeys: 4 })),
  }),
  report: fc.record({
    v: fc.constant(1), step: count, globalStep: count,
    loss: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1e7, noNaN: true })),
    accuracy: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1, noNaN: true })),
    backend: fc.constantFrom(...BACKENDS), backendReason: shortString,
    samplesPerSec: fc.double({ min: 0, max: 1e9, noNaN: true }), stepsPerSec: fc.double({ min: 0, max: 1e9, noNaN: true }),
    samples: count, bytesSent: bytes, bytesReceived: bytes,
    neighbors: fc.array(slotRef, { maxLength: 4 }),
    links: fc.dictionary(slotRef, fc.record({ sent: bytes, received: bytes }), { maxKeys: 4 }),
    lr: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1e4, noNaN: true })),
    h: fc.oneof(fc.constant(null), fc.nat(1000)),
    consensus: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1e13, noNaN: true })),
    stage: fc.constantFrom(...PEER_STAGES),
    diverged: fc.record({ step: fc.nat(), loss: fc.oneof(fc.constant(null), fc.double({ noNaN: true })), reason: shortString }),
    updaters: fc.nat(64), rejected: count,
    slowFactor: fc.double({ min: 1, max: 100, noNaN: true }), addedLatencyMs: fc.double({ min: 0, max: 60_000, noNaN: true }),
    computeThread: fc.constantFrom('worker', 'main'),
  }, { requiredKeys: ['v', 'step', 'loss', 'accuracy', 'backend', 'samplesPerSec', 'bytesSent', 'bytesReceived', 'neighbors'] }),
  suspect: fc.record({ v: fc.constant(1), peer: peerRef, reason: fc.string({ maxLength: 210 }) }),
  checkpoint: fc.record({
    v: fc.constant(1), step: fc.oneof(fc.nat(2000), fc.nat()),
    schemaHash: fc.oneof({ weight: 3, arbitrary: fc.constant(layout.schemaHash) }, { weight: 1, arbitrary: fc.string({ maxLength: 70 }) }),
    params: fc.oneof(
      // The room model's exact size (400 KB for the default MLP): accepted from the roster's writer.
      { weight: 3, arbitrary: fc.constant('model') },
      { weight: 1, arbitrary: fc.constant('model-nan') },
      { weight: 1, arbitrary: fc.constant('model-buffer') },
      { weight: 10, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.oneof(fc.nat(layout.paramCount * 4 + 8), fc.constantFrom(layout.paramCount * 4 - 4, layout.paramCount * 4 + 4)).map((n) => `bytes:${n}`) },
    ),
  }),
}

/** Values only a socket can carry: binary where JSON belongs, and socket.io's own binary placeholder shape. */
const socketNasty: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: nastyValue },
  { weight: 2, arbitrary: jsonish },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>({ _placeholder: true, num: 0 }, { _placeholder: true, num: 99 }, new ArrayBuffer(3)) },
)

type PayloadMutation =
  | { op: 'set'; key: string; value: unknown }
  | { op: 'delete'; key: string }
  | { op: 'extra'; key: string; value: unknown }

const ALL_KEYS = [...new Set(Object.values(FIELDS).flat())]
const payloadMutation: fc.Arbitrary<PayloadMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...ALL_KEYS), value: socketNasty }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...ALL_KEYS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extra' as const), key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 })), value: socketNasty }) },
)

function mutate(payload: unknown, ms: PayloadMutation[]): unknown {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || payload instanceof Uint8Array) return payload
  let p = payload as Obj
  for (const m of ms) {
    if (m.op === 'delete') p = withoutKey(p, m.key)
    else p = withOwnKey(p, m.key, m.value)
  }
  return p
}

/** How the event is emitted: payload only, with an ack, with no argument at all, or with junk before the ack. */
type EmitMode = 'plain' | 'ack' | 'bare' | 'junk-ack'

export interface SocketCommand {
  slot: number
  event: string
  payload: unknown
  mode: EmitMode
  /** Send even if this socket's mirrored budget is spent (the answer is 'rate-limited'). */
  overrun: boolean
  /** When this command opens a fresh socket: join first (as a volunteer, then ready; or as a spectator), or not. */
  fresh: { room: string; role: 'volunteer' | 'spectator' } | null
}

const eventName = fc.oneof(
  { weight: 40, arbitrary: fc.constantFrom<string>(...EVENTS, 'join', 'ready', 'signal', 'report', 'report', 'suspect') },
  // Events no handler listens to: nothing may happen.
  { weight: 1, arbitrary: fc.constantFrom('hello', 'membership', 'command', 'room-state', 'error', 'x', 'JOIN', 'join ') },
)

export const socketCommand: fc.Arbitrary<SocketCommand> = eventName.chain((event) => {
  const valid = validPayload[event] ?? fc.constant({ v: 1 })
  const payload = fc.oneof(
    { weight: 10, arbitrary: valid },
    { weight: 6, arbitrary: fc.tuple(valid, fc.array(payloadMutation, { minLength: 1, maxLength: 3 })).map(([p, ms]) => mutate(p, ms)) },
    { weight: 1, arbitrary: socketNasty },
    { weight: 1, arbitrary: jsonish },
  )
  return fc.record({
    slot: fc.nat(SLOTS - 1),
    event: fc.constant(event),
    payload,
    mode: fc.constantFrom<EmitMode>('plain', 'plain', 'ack', 'ack', 'bare', 'junk-ack'),
    overrun: fc.nat(49).map((n) => n === 0),
    fresh: fc.oneof(
      { weight: 6, arbitrary: fc.record({ room: fc.constantFrom(...ROOMS), role: fc.constant('volunteer' as const) }) },
      { weight: 1, arbitrary: fc.record({ room: fc.constantFrom(...ROOMS), role: fc.constant('spectator' as const) }) },
      { weight: 2, arbitrary: fc.constant(null) },
    ),
  })
})

// ---- the sockets ----

interface Sent {
  event: string
  payload: unknown
}

class Slot {
  socket: Socket | null = null
  budget = new Map<string, number>()
  sinceSync: Sent[] = []
  sentSinceSync = 0
}

/** What broke the contract; the first ones fail the property at the next marker. */
interface Pool {
  url: string
  slots: Slot[]
  violations: string[]
  tally: Tally
  closing: Set<Socket>
}

function violation(pool: Pool, slot: Slot, what: string, event: string): void {
  if (pool.violations.length >= 20) return
  const candidates = slot.sinceSync.filter((s) => s.event === event).slice(-4).map((s) => show(s.payload, 400))
  pool.violations.push(`${what}\n    sent on this socket since the last marker (last 4 '${event}'): ${candidates.join('\n      ') || '(none)'}`)
}

function checkAnswer(pool: Pool, slot: Slot, event: string, r: { code?: unknown; message?: unknown }, via: string, label = via): void {
  const code = typeof r.code === 'string' ? r.code : ''
  const message = typeof r.message === 'string' ? r.message : ''
  pool.tally.add(`${label === "'error' event" ? 'error' : label}:${event}:${code || '?'}`)
  if (code === '') violation(pool, slot, `${via} for '${event}' without a code: ${show(r)}`, event)
  if (message.trim() === '') violation(pool, slot, `${via} for '${event}' without a message: ${show(r)}`, event)
  if (code === 'internal') violation(pool, slot, `${via} for '${event}': code 'internal' (a handler threw): ${show(r)}`, event)
  if (code === 'bad-request' && !namesField(event, message))
    violation(pool, slot, `${via} for '${event}': 'bad-request' does not name a field: ${show(message)}`, event)
}

const BUDGET: Record<string, number> = Object.fromEntries(
  // Signals keep room for the markers (one per sync), which travel as 'signal'.
  Object.entries(EVENT_RATE_LIMITS).map(([e, [burst]]) => [e, e === 'signal' ? burst - 100 : burst]),
)

async function open(pool: Pool, slot: Slot): Promise<void> {
  const old = slot.socket
  if (old) {
    pool.closing.add(old)
    old.disconnect()
  }
  pool.tally.add('open')
  const s = connect(pool.url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: SYNC_TIMEOUT_MS })
  slot.socket = s
  slot.budget = new Map(Object.entries(BUDGET))
  slot.sinceSync = []
  s.on('error', (e: unknown) => {
    const parsed = serverErrorSchema.safeParse(e)
    if (!parsed.success) return violation(pool, slot, `an 'error' event that does not match its schema: ${show(e)}`, '?')
    checkAnswer(pool, slot, parsed.data.event, parsed.data, "'error' event")
  })
  let refusedBytes = false
  s.on('error', (e: { event?: unknown; code?: unknown }) => {
    if (e?.event === 'connect' && e.code === 'rate-limited') refusedBytes = true
  })
  s.on('disconnect', (reason) => {
    if (pool.closing.delete(s)) return
    if (slot.socket === s) slot.socket = null
    pool.tally.add(`disconnect:${reason}${refusedBytes ? ' (byte budget)' : ''}`)
    // The server sends a socket away when it is over its byte budget (it is told why first), and
    // socket.io's own parser closes a connection whose packet it cannot decode: a forged binary
    // placeholder. Anything else means the server dropped a client it should have answered.
    if (reason === 'io server disconnect' && refusedBytes) return
    if (reason === 'transport close' && slot.sinceSync.some((x) => hasPlaceholder(x.payload))) return
    violation(pool, slot, `the server closed this connection (${reason})`, slot.sinceSync[slot.sinceSync.length - 1]?.event ?? '?')
  })
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve())
    s.once('connect_error', (err) => reject(new Error(`socket did not connect: ${err.message}`)))
  })
}

function hasPlaceholder(v: unknown, depth = 0): boolean {
  if (typeof v !== 'object' || v === null || depth > 6 || v instanceof Uint8Array || v instanceof ArrayBuffer) return false
  if (Object.hasOwn(v, '_placeholder')) return true
  return Object.values(v).some((x) => hasPlaceholder(x, depth + 1))
}

/** The ack, the 'error' events and every earlier answer on this socket have arrived once this returns. */
async function marker(pool: Pool, slot: Slot): Promise<void> {
  const s = slot.socket
  if (!s?.connected) return
  slot.budget.set('signal', (slot.budget.get('signal') ?? 0) - 1)
  pool.tally.add('marker')
  let r: { ok?: unknown; code?: unknown; message?: unknown }
  try {
    r = await s.timeout(SYNC_TIMEOUT_MS).emitWithAck('signal', null)
  } catch (err) {
    // A socket the server closed meanwhile (counted at its disconnect) has nothing left to answer.
    if (!s.connected) return
    throw new Error(`marker on a live socket not answered in ${SYNC_TIMEOUT_MS} ms: ${String(err)}`)
  }
  if (r?.ok !== false || (r.code !== 'bad-request' && r.code !== 'rate-limited'))
    violation(pool, slot, `marker answered ${show(r)}`, 'signal')
  slot.sinceSync = []
  slot.sentSinceSync = 0
}

async function sync(pool: Pool): Promise<void> {
  await Promise.all(pool.slots.filter((s) => s.sentSinceSync > 0).map((s) => marker(pool, s)))
  if (pool.violations.length) throw new Error(`${pool.violations.length} violation(s):\n  ${pool.violations.join('\n  ')}`)
}

function resolvePeers(pool: Pool, v: unknown, depth = 0): unknown {
  if (typeof v === 'string' && v.startsWith(PEER_REF)) return pool.slots[Number(v.slice(PEER_REF.length))]?.socket?.id ?? 'gone'
  if (depth > 2 || typeof v !== 'object' || v === null || v instanceof Uint8Array || v instanceof ArrayBuffer) return v
  if (Array.isArray(v)) return v.map((x) => resolvePeers(pool, x, depth + 1))
  const out: Obj = {}
  for (const k of Object.keys(v)) {
    const key = resolvePeers(pool, k, depth + 1) as string
    Object.defineProperty(out, key, { value: resolvePeers(pool, (v as Obj)[k], depth + 1), enumerable: true, writable: true, configurable: true })
  }
  return out
}

function materialize(event: string, payload: unknown): unknown {
  if (event !== 'checkpoint' || typeof payload !== 'object' || payload === null) return payload
  const p = payload as Obj
  const params = p.params
  if (typeof params !== 'string') return payload
  const floats = new Float32Array(layout.paramCount)
  if (params === 'model-nan') floats[floats.length >> 1] = NaN
  let bytes: Uint8Array | ArrayBuffer = new Uint8Array(floats.buffer)
  if (params === 'model-buffer') bytes = floats.buffer
  else if (params.startsWith('bytes:')) bytes = new Uint8Array(Number(params.slice(6)))
  return { ...p, params: bytes }
}

/** A fresh socket joins one of the shared rooms first (most hostile clients would), so later events reach deeper. */
function joinFresh(pool: Pool, slot: Slot, fresh: NonNullable<SocketCommand['fresh']>): void {
  const s = slot.socket!
  const spend = (event: string) => slot.budget.set(event, (slot.budget.get(event) ?? 0) - 1)
  spend('join')
  s.emit('join', { v: 1, room: fresh.room, role: fresh.role }, (r: unknown) => {
    const a = (r ?? {}) as { ok?: unknown; code?: unknown; message?: unknown }
    if (a.ok === true) return void pool.tally.add('fresh-join:ok')
    checkAnswer(pool, slot, 'join', a, 'ack', 'fresh-join')
  })
  if (fresh.role === 'volunteer') {
    spend('ready')
    s.emit('ready', { v: 1 })
  }
}

async function runCommand(pool: Pool, cmd: SocketCommand): Promise<void> {
  const slot = pool.slots[cmd.slot]
  const left = slot.budget.get(cmd.event)
  if (!slot.socket?.connected || (left !== undefined && left <= 0 && !cmd.overrun)) {
    await open(pool, slot)
    if (cmd.fresh) joinFresh(pool, slot, cmd.fresh)
  }
  const s = slot.socket!
  if (left !== undefined) slot.budget.set(cmd.event, (slot.budget.get(cmd.event) ?? 0) - 1)
  const payload = materialize(cmd.event, resolvePeers(pool, cmd.payload))
  if (slot.sinceSync.length < 64) slot.sinceSync.push({ event: cmd.event, payload })
  slot.sentSinceSync++
  pool.tally.add(`sent:${EVENTS.includes(cmd.event as EventName) ? cmd.event : '(other)'}`)
  const ack = (r: unknown) => {
    const a = (r ?? {}) as { ok?: unknown; code?: unknown; message?: unknown }
    if (a.ok === true) return void pool.tally.add(`ack:${cmd.event}:ok`)
    checkAnswer(pool, slot, cmd.event, a, 'ack')
  }
  // socket.io-client refuses its reserved names; the server never sees them, so they are not sent.
  const emit = s.emit.bind(s) as (ev: string, ...args: unknown[]) => void
  switch (cmd.mode) {
    case 'plain': return emit(cmd.event, payload)
    case 'ack': return emit(cmd.event, payload, ack)
    case 'bare': return emit(cmd.event)
    case 'junk-ack': return emit(cmd.event, payload, 'junk', ack)
  }
}

export async function fuzzSockets(opts: FuzzOptions): Promise<TargetResult> {
  const tally = new Tally()
  const proc = trackProcessFailures()
  const server = await startFuzzServer()
  const pool: Pool = { url: server.url, slots: Array.from({ length: SLOTS }, () => new Slot()), violations: [], tally, closing: new Set() }
  let cases = 0
  const t0 = performance.now()
  const property = fc.asyncProperty(fc.array(socketCommand, { minLength: 1, maxLength: 3 }), async (cmds) => {
    for (const cmd of cmds) await runCommand(pool, cmd)
    if (++cases % SYNC_EVERY === 0) await sync(pool)
    if (server.failures.length) throw new Error(`the server logged a failure:\n  ${server.failures.join('\n  ')}`)
  })
  const details = await fc.check(property, checkParams(opts, false))
  // The last cases' answers, then every socket goes (each one's disconnect handler runs).
  const problems: string[] = []
  if (!details.failed) await sync(pool).catch((err: unknown) => problems.push(err instanceof Error ? err.message : String(err)))
  const seconds = (performance.now() - t0) / 1000
  for (const slot of pool.slots) {
    if (!slot.socket) continue
    pool.closing.add(slot.socket)
    slot.socket.disconnect()
  }
  await new Promise((r) => setTimeout(r, 200))
  const health = await healthProblem(server.url)
  if (health) problems.push(health)
  await server.close()
  proc.stop()
  problems.push(...server.failures.map((f) => `server log: ${f}`), ...proc.failures)
  return toResult('socket-handlers', details, seconds, tally, problems.length ? problems.join('\n') : null)
}
