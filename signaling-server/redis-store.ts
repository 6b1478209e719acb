import { Redis } from 'ioredis'
import { roomConfigSchema } from '../shared/config'
import { historyPointSchema, historyRunSchema, type HistoryPoint } from '../shared/protocol/history'
import { normalizeJoinCode } from './join-code'
import { MAX_RUNS_PER_ROOM, parseSafety, type Checkpoint, type PersistedRoom, type RoomMeta, type RoomSafety, type RoomStore } from './rooms'

/**
 * Room state in Redis, for several server processes (docs/deploy.md "Several processes").
 *
 * A room is served by one process at a time, the holder of its lease (`ts:lease:{room}`, see
 * ownership.ts). Every write here is fenced by that lease inside a Lua script: a process that
 * lost the room (it stalled past the lease, or handed the room over) cannot overwrite what the
 * new owner writes. Writes are sent in order on one connection, so a hand-over that releases
 * the lease after them leaves nothing behind.
 *
 * Keys (one standalone Redis, or one with replicas/Sentinel; the scripts also touch the shared
 * `ts:rooms` and `ts:code:*` keys, which Redis Cluster would refuse):
 *   ts:rooms                 set of room names
 *   ts:code:CODE             room name of a join code
 *   ts:room:{R}              RoomMeta (JSON)
 *   ts:safety:{R}            RoomSafety (JSON)
 *   ts:runs:{R}              hash run → run record (JSON, without points)
 *   ts:pts:{R}:RUN           list of history points (JSON), the newest MAX_POINTS_PER_RUN
 *   ts:cp:{R} / ts:cpmeta:{R} the latest checkpoint's bytes and its metadata (JSON)
 */

/** History points kept per run in Redis (the in-memory record thins its own copy; this bounds the store). */
export const MAX_POINTS_PER_RUN = 20_000

export const leaseKey = (room: string) => `ts:lease:{${room}}`
const roomKey = (room: string) => `ts:room:{${room}}`
const safetyKey = (room: string) => `ts:safety:{${room}}`
const runsKey = (room: string) => `ts:runs:{${room}}`
const pointsKey = (room: string, run: number) => `ts:pts:{${room}}:${run}`
const cpKey = (room: string) => `ts:cp:{${room}}`
const cpMetaKey = (room: string) => `ts:cpmeta:{${room}}`
const codeKey = (code: string) => `ts:code:${code}`
const ROOMS = 'ts:rooms'

/**
 * KEYS[1] lease, KEYS[2] target; ARGV[1] our token, ARGV[2] the operation, the rest its
 * arguments. Returns 0 (and writes nothing) when the lease is not ours.
 */
const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local op = ARGV[2]
if op == 'set' then
  redis.call('SET', KEYS[2], ARGV[3])
elseif op == 'hset' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
elseif op == 'push' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
elseif op == 'del' then
  redis.call('DEL', KEYS[2])
elseif op == 'room' then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SADD', '${ROOMS}', ARGV[4])
  redis.call('SET', 'ts:code:' .. ARGV[5], ARGV[4])
end
return 1
`

/** KEYS: lease, room, safety, runs, cp, cpmeta; ARGV: token, name, code. Deletes the room and every run's points. */
const FENCED_DELETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, run in ipairs(redis.call('HKEYS', KEYS[4])) do
  redis.call('DEL', 'ts:pts:{' .. ARGV[2] .. '}:' .. run)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', '${ROOMS}', ARGV[2])
if redis.call('GET', 'ts:code:' .. ARGV[3]) == ARGV[2] then redis.call('DEL', 'ts:code:' .. ARGV[3]) end
return 1
`

export interface RedisRoomStore extends RoomStore {
  /** The room a name or join code refers to in Redis, or null when there is none. */
  resolve(nameOrCode: string): Promise<string | null>
  /** Everything stored for a room (rosters are not stored: peers rejoin), or null. */
  load(name: string): Promise<PersistedRoom | null>
  /** Resolves once every write issued so far has reached Redis (or failed). */
  flush(): Promise<void>
  /** Writes refused because the lease was not ours (a fenced-off stale owner). */
  readonly fenced: number
}

type FencedRedis = Redis & {
  tsFencedWrite(lease: string, target: string, token: string, op: string, ...args: (string | Buffer | number)[]): Promise<number>
  tsFencedDelete(lease: string, room: string, safety: string, runs: string, cp: string, cpmeta: string, token: string, name: string, code: string): Promise<number>
}

export function defineStoreScripts(redis: Redis): FencedRedis {
  const r = redis as FencedRedis
  if (typeof r.tsFencedWrite !== 'function') {
    redis.defineCommand('tsFencedWrite', { numberOfKeys: 2, lua: FENCED_WRITE })
    redis.defineCommand('tsFencedDelete', { numberOfKeys: 6, lua: FENCED_DELETE })
  }
  return r
}

/**
 * `token` is this process's lease value (ownership.ts); writes for a room whose lease holds
 * another value are dropped by Redis. Errors go to `onError` (the registry's writes are best
 * effort, as with SQLite).
 */
export function redisStore(redis: Redis, token: string, onError: (err: unknown) => void = () => {}): RedisRoomStore {
  const r = defineStoreScripts(redis)
  const codes = new Map<string, string>()
  let pending: Promise<unknown> = Promise.resolve()
  let fenced = 0
  const track = (p: Promise<number>) => {
    const settled = p.then((ok) => { if (ok === 0) fenced += 1 }, onError)
    pending = settled
  }
  const write = (room: string, target: string, op: string, ...args: (string | Buffer | number)[]) =>
    track(r.tsFencedWrite(leaseKey(room), target, token, op, ...args))

  return {
    get fenced() { return fenced },
    saveRoom(m: RoomMeta) {
      codes.set(m.name, m.code)
      write(m.name, roomKey(m.name), 'room', JSON.stringify(m), m.name, m.code)
    },
    saveRun(room, run) {
      write(room, runsKey(room), 'hset', String(run.run), JSON.stringify(run))
    },
    appendPoint(room, run, p: HistoryPoint) {
      write(room, pointsKey(room, run), 'push', JSON.stringify(p), MAX_POINTS_PER_RUN)
    },
    saveCheckpoint(room, cp: Checkpoint) {
      write(room, cpKey(room), 'set', Buffer.from(cp.params.buffer, cp.params.byteOffset, cp.params.byteLength))
      write(room, cpMetaKey(room), 'set', JSON.stringify({ run: cp.run, step: cp.step, schemaHash: cp.schemaHash, savedAt: cp.savedAt }))
    },
    deleteCheckpoint(room) {
      write(room, cpMetaKey(room), 'del')
      write(room, cpKey(room), 'del')
    },
    deleteRoom(room) {
      track(r.tsFencedDelete(leaseKey(room), roomKey(room), safetyKey(room), runsKey(room), cpKey(room), cpMetaKey(room), token, room, codes.get(room) ?? ''))
      codes.delete(room)
    },
    saveSafety(room, safety: RoomSafety) {
      write(room, safetyKey(room), 'set', JSON.stringify(safety))
    },
    async resolve(nameOrCode) {
      const code = normalizeJoinCode(nameOrCode)
      // A name wins over a code, as in RoomRegistry.get.
      const [exists, byCode] = await Promise.all([
        redis.exists(roomKey(nameOrCode)),
        code ? redis.get(codeKey(code)) : Promise.resolve(null),
      ])
      return exists ? nameOrCode : byCode
    },
    async load(name) {
      const [meta, safety, runs, cpMeta, cp] = await Promise.all([
        redis.get(roomKey(name)), redis.get(safetyKey(name)), redis.hgetall(runsKey(name)), redis.get(cpMetaKey(name)), redis.getBuffer(cpKey(name)),
      ])
      const m = parseMeta(meta)
      if (!m) return null
      codes.set(m.name, m.code)
      const runList: PersistedRoom['runs'] = []
      const runNumbers = Object.keys(runs).map(Number).filter((n) => Number.isInteger(n) && n > 0).sort((a, b) => a - b).slice(-MAX_RUNS_PER_ROOM)
      const points = await Promise.all(runNumbers.map((n) => redis.lrange(pointsKey(name, n), 0, -1)))
      runNumbers.forEach((n, i) => {
        const run = parseRun(runs[String(n)])
        if (run) runList.push({ ...run, points: parsePoints(points[i]) })
      })
      return { ...m, runs: runList, checkpoint: parseCheckpoint(cpMeta, cp), safety: parseJson(safety, parseSafety) }
    },
    flush() {
      return pending.then(() => undefined)
    },
  }
}

function parseJson<T>(json: string | null, parse: (raw: unknown) => T | null): T | null {
  if (json === null) return null
  try {
    return parse(JSON.parse(json))
  } catch {
    return null
  }
}

function parseMeta(json: string | null): RoomMeta | null {
  return parseJson(json, (raw) => {
    if (typeof raw !== 'object' || raw === null) return null
    const o = raw as Record<string, unknown>
    const config = roomConfigSchema.safeParse(o.config)
    if (!config.success || typeof o.name !== 'string' || typeof o.code !== 'string') return null
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
    const createdAt = num(o.createdAt), run = num(o.run), epoch = num(o.epoch)
    if (createdAt === null || run === null || epoch === null) return null
    return {
      name: o.name, code: o.code, createdAt, config: config.data, run, epoch, paused: o.paused === true,
      tokenHash: typeof o.tokenHash === 'string' ? o.tokenHash : null,
    }
  })
}

function parseRun(json: string | undefined): Omit<PersistedRoom['runs'][number], 'points'> | null {
  return parseJson(json ?? null, (raw) => {
    if (typeof raw !== 'object' || raw === null) return null
    const o = raw as Record<string, unknown>
    const config = roomConfigSchema.safeParse(o.config)
    if (!config.success || typeof o.run !== 'number' || typeof o.started !== 'number') return null
    const diverged = historyRunSchema.shape.diverged.safeParse(o.diverged ?? null)
    return { run: o.run, config: config.data, started: o.started, diverged: diverged.success ? diverged.data : null }
  })
}

function parsePoints(rows: readonly string[]): HistoryPoint[] {
  return rows.flatMap((row) => {
    const p = parseJson(row, (raw) => {
      const r = historyPointSchema.safeParse(raw)
      return r.success ? r.data : null
    })
    return p ? [p] : []
  })
}

function parseCheckpoint(meta: string | null, params: Buffer | null): Checkpoint | null {
  if (!params) return null
  return parseJson(meta, (raw) => {
    if (typeof raw !== 'object' || raw === null) return null
    const o = raw as Record<string, unknown>
    if (typeof o.run !== 'number' || typeof o.step !== 'number' || typeof o.schemaHash !== 'string' || typeof o.savedAt !== 'number') return null
    return { run: o.run, step: o.step, schemaHash: o.schemaHash, savedAt: o.savedAt, params: new Uint8Array(params) }
  })
}
