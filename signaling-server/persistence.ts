import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { roomConfigSchema, type RoomConfig } from '../shared/config'
import { historyPointSchema, historyRunSchema, type HistoryPoint } from '../shared/protocol/history'
import { parseSafety, type Checkpoint, type PersistedRoom, type RoomMeta, type RoomSafety, type RoomStore } from './rooms'

/**
 * SQLite storage for rooms, run history and each room's latest checkpoint, so a restarted
 * server keeps its rooms and host tokens, and volunteers that reconnect resume from the model.
 * Synchronous (better-sqlite3): each write is one small statement in WAL mode.
 */

export const DB_FILE = 'tabswarm.sqlite'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  name TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, config TEXT NOT NULL,
  token_hash TEXT, run INTEGER NOT NULL, paused INTEGER NOT NULL, epoch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  room TEXT NOT NULL, run INTEGER NOT NULL, config TEXT NOT NULL, started INTEGER NOT NULL,
  PRIMARY KEY (room, run)
);
CREATE TABLE IF NOT EXISTS points (
  room TEXT NOT NULL, run INTEGER NOT NULL, t REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_room_run ON points (room, run, t);
CREATE TABLE IF NOT EXISTS checkpoints (
  room TEXT PRIMARY KEY, run INTEGER NOT NULL, step INTEGER NOT NULL, schema_hash TEXT NOT NULL,
  saved_at INTEGER NOT NULL, params BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS safety (room TEXT PRIMARY KEY, data TEXT NOT NULL);
`

export interface SqliteStore extends RoomStore {
  load(): PersistedRoom[]
  close(): void
}

/** Opens (creating if needed) `<dataDir>/tabswarm.sqlite`. */
export function openStore(dataDir: string, log: (msg: string) => void = () => {}): SqliteStore {
  const db = openDatabase(dataDir)
  const upsertRoom = db.prepare(`INSERT INTO rooms (name, code, created_at, config, token_hash, run, paused, epoch)
    VALUES (@name, @code, @createdAt, @config, @tokenHash, @run, @paused, @epoch)
    ON CONFLICT(name) DO UPDATE SET config = excluded.config, token_hash = excluded.token_hash,
      run = excluded.run, paused = excluded.paused, epoch = excluded.epoch`)
  const upsertRun = db.prepare(`INSERT OR REPLACE INTO runs (room, run, config, started, diverged) VALUES (?, ?, ?, ?, ?)`)
  const insertPoint = db.prepare(`INSERT INTO points (room, run, t, data) VALUES (?, ?, ?, ?)`)
  const upsertCheckpoint = db.prepare(`INSERT OR REPLACE INTO checkpoints (room, run, step, schema_hash, saved_at, params)
    VALUES (?, ?, ?, ?, ?, ?)`)
  const deleteCheckpoint = db.prepare(`DELETE FROM checkpoints WHERE room = ?`)
  const upsertSafety = db.prepare(`INSERT OR REPLACE INTO safety (room, data) VALUES (?, ?)`)
  const deleteRoom = db.transaction((room: string) => {
    for (const table of ['points', 'runs', 'checkpoints', 'safety']) db.prepare(`DELETE FROM ${table} WHERE room = ?`).run(room)
    db.prepare(`DELETE FROM rooms WHERE name = ?`).run(room)
  })
  const parseConfig = configParser(log)

  return {
    saveRoom(m: RoomMeta) {
      upsertRoom.run({ ...m, config: JSON.stringify(m.config), paused: m.paused ? 1 : 0 })
    },
    saveRun(room, r) {
      upsertRun.run(room, r.run, JSON.stringify(r.config), r.started, r.diverged ? JSON.stringify(r.diverged) : null)
    },
    appendPoint(room, run, p: HistoryPoint) {
      insertPoint.run(room, run, p.t, JSON.stringify(p))
    },
    saveCheckpoint(room, cp: Checkpoint) {
      upsertCheckpoint.run(room, cp.run, cp.step, cp.schemaHash, cp.savedAt, Buffer.from(cp.params.buffer, cp.params.byteOffset, cp.params.byteLength))
    },
    deleteCheckpoint(room) {
      deleteCheckpoint.run(room)
    },
    deleteRoom(room) {
      deleteRoom(room)
    },
    saveSafety(room, safety: RoomSafety) {
      upsertSafety.run(room, JSON.stringify(safety))
    },
    load() {
      return loadRooms(db, parseConfig)
    },
    close() {
      db.close()
    },
  }
}

type Db = InstanceType<typeof Database>
type ConfigParser = (json: string, where: string) => RoomConfig | null

function openDatabase(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true })
  const db = new Database(join(dataDir, DB_FILE))
  db.pragma('journal_mode = WAL')
  db.exec(SCHEMA)
  // Columns appended after the first release: add them to databases created before.
  const runColumns = (db.prepare(`PRAGMA table_info(runs)`).all() as { name: string }[]).map((c) => c.name)
  if (!runColumns.includes('diverged')) db.exec(`ALTER TABLE runs ADD COLUMN diverged TEXT`)
  return db
}

// A row written by an older schema of RoomConfig must not crash the server: skip and log it.
function configParser(log: (msg: string) => void): ConfigParser {
  return (json, where) => {
    try {
      const r = roomConfigSchema.safeParse(JSON.parse(json))
      if (r.success) return r.data
      log(`persistence: ignoring ${where}: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`)
    } catch (err) {
      log(`persistence: ignoring ${where}: ${String(err)}`)
    }
    return null
  }
}

type RoomRow = { name: string; code: string; created_at: number; config: string; token_hash: string | null; run: number; paused: number; epoch: number }
type RunRow = { run: number; config: string; started: number; diverged: string | null }
type CpRow = { run: number; step: number; schema_hash: string; saved_at: number; params: Buffer }

function loadRooms(db: Db, parseConfig: ConfigParser): PersistedRoom[] {
  const out: PersistedRoom[] = []
  const runsOf = db.prepare(`SELECT run, config, started, diverged FROM runs WHERE room = ? ORDER BY run`)
  const pointsOf = db.prepare(`SELECT data FROM points WHERE room = ? AND run = ? ORDER BY t`)
  const cpOf = db.prepare(`SELECT run, step, schema_hash, saved_at, params FROM checkpoints WHERE room = ?`)
  const safetyOf = db.prepare(`SELECT data FROM safety WHERE room = ?`)
  for (const row of db.prepare(`SELECT * FROM rooms`).all() as RoomRow[]) {
    const config = parseConfig(row.config, `room '${row.name}'`)
    if (!config) continue
    const runs: PersistedRoom['runs'] = []
    for (const rr of runsOf.all(row.name) as RunRow[]) {
      const rc = parseConfig(rr.config, `run ${rr.run} of '${row.name}'`)
      if (!rc) continue
      const points = parsePoints(pointsOf.all(row.name, rr.run) as { data: string }[])
      runs.push({ run: rr.run, config: rc, started: rr.started, points, diverged: parseDivergence(rr.diverged) })
    }
    const cp = cpOf.get(row.name) as CpRow | undefined
    const safety = safetyOf.get(row.name) as { data: string } | undefined
    out.push({
      safety: safety ? parseJsonSafety(safety.data) : null,
      name: row.name, code: row.code, createdAt: row.created_at, config, tokenHash: row.token_hash,
      run: row.run, paused: row.paused === 1, epoch: row.epoch, runs,
      checkpoint: cp ? { run: cp.run, step: cp.step, schemaHash: cp.schema_hash, savedAt: cp.saved_at, params: new Uint8Array(cp.params) } : null,
    })
  }
  return out
}

function parseJsonSafety(json: string): RoomSafety | null {
  try {
    return parseSafety(JSON.parse(json))
  } catch {
    return null
  }
}

/** A corrupt row costs one chart point, never the room. */
function parsePoints(rows: readonly { data: string }[]): HistoryPoint[] {
  return rows.flatMap((p): HistoryPoint[] => {
    try {
      const r = historyPointSchema.safeParse(JSON.parse(p.data))
      return r.success ? [r.data] : []
    } catch {
      return []
    }
  })
}

/** A stored divergence mark, or null when absent or unreadable (a bad row never costs the room). */
function parseDivergence(json: string | null) {
  if (!json) return null
  try {
    const r = historyRunSchema.shape.diverged.safeParse(JSON.parse(json))
    return r.success ? r.data : null
  } catch {
    return null
  }
}
