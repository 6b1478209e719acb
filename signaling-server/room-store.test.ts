import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe } from 'vitest'
import { openStore } from './persistence'
import { roomStoreSuite } from './room-store.suite'

/** The room-state suite on the single-process back end: SQLite in DATA_DIR (redis-store.int.test.ts runs it on Redis). */
describe('room state in SQLite', () => {
  roomStoreSuite(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabswarm-store-'))
    const store = openStore(dir)
    return {
      store,
      own: async () => {},
      // Another process opens the same database file.
      reload: async (room) => {
        const other = openStore(dir)
        try {
          return other.load().find((r) => r.name === room) ?? null
        } finally {
          other.close()
        }
      },
      close: async () => {
        store.close()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  })
})
