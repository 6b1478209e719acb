import type { Socket } from 'socket.io-client'
import { describe, expect, it } from 'vitest'
import { modelLayout } from '../../shared/model-shapes'
import type { RoomResponse } from '../../shared/protocol/http'
import { volunteerContext } from '../support/browser'
import { createRoom, e2eEnvironment, roomUrl } from '../support/e2e'
import { getJson, waitFor } from '../support/server'
import { nextEvent, testSockets } from '../support/socket-events'

/**
 * The host page's trust controls in real headless Chromium: the teacher sees the kept
 * checkpoints and rolls back to one (every volunteer is told to reload it), pins the checkpoint
 * writer to a student, and deletes the room (everyone disconnected, the room gone).
 */

type Any = Record<string, any> // test-side view of socket payloads
const connect = testSockets()

describe('host page: checkpoints, roles, delete', () => {
  const env = e2eEnvironment()

  it('rolls back, pins the writer and deletes the room by clicking', async () => {
    const { browser, server } = env
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } })
    const host = await ctx.newPage()
    host.on('pageerror', (e) => console.error('[host] pageerror', e.message))
    // Every confirm() on this page (roll back, delete) is accepted, as a teacher would.
    host.on('dialog', (d) => void d.accept())
    await host.goto(`${server.url}/host`)
    await host.getByRole('button', { name: 'Create room' }).click()
    const codeBox = host.getByTestId('join-code')
    await codeBox.waitFor()
    const code = ((await codeBox.textContent()) ?? '').trim()
    const url = `${server.url}/api/rooms/${encodeURIComponent(code)}`
    const view = async () => (await getJson<RoomResponse>(url)).body
    const { config } = await view()

    // Two scripted volunteers; the first is the writer and uploads two checkpoints.
    const volunteer = async (): Promise<{ s: Socket; id: string }> => {
      const s = connect(server.url)
      await nextEvent(s, 'connect', 'connect')
      const ack = await s.timeout(10_000).emitWithAck('join', { v: 1, room: code, role: 'volunteer' })
      expect(ack.ok).toBe(true)
      const listed = nextEvent<Any>(s, 'membership', 'in the roster', (m) => m.peers.includes(ack.self))
      s.emit('ready', { v: 1 })
      await listed
      return { s, id: ack.self }
    }
    const a = await volunteer()
    const b = await volunteer()
    const layout = modelLayout(config.model, config.dataset)
    if (!layout.ok) throw new Error(layout.error)
    const upload = (s: Socket, fill: number) =>
      s.emit('checkpoint', { v: 1, step: 0, schemaHash: layout.schemaHash, params: new Uint8Array(new Float32Array(layout.paramCount).fill(fill).buffer) })
    upload(a.s, 0.1)
    await waitFor('first checkpoint', async () => (await view()).checkpoints.length === 1, 10_000, 100)
    upload(a.s, 0.2)
    const kept = await waitFor('two checkpoints', async () => {
      const v = await view()
      return v.checkpoints.length === 2 && v.checkpoints
    }, 10_000, 100)

    // Roll back to the older one from the Checkpoints card.
    const told = nextEvent<Any>(b.s, 'command', 'b told to reload', (c) => c.type === 'restore-checkpoint')
    await host.getByRole('button', { name: 'Roll back to run 1 step 0' }).click()
    expect(await told).toMatchObject({ step: 0, savedAt: kept[0].savedAt })
    await waitFor('the older checkpoint is current', async () => {
      const v = await view()
      return v.checkpoints.length === 1 && v.checkpoints[0].savedAt === kept[0].savedAt
    }, 10_000, 100)

    // Pin the writer to the second volunteer from the Roles card.
    const select = host.getByLabel('Checkpoint writer: pin to')
    await select.locator(`option[value="${b.id}"]`).waitFor({ state: 'attached' })
    await select.selectOption({ value: b.id })
    await host.getByRole('button', { name: 'Pin checkpoint writer', exact: true }).click()
    await waitFor('writer pinned to b', async () => {
      const v = await view()
      return v.roles.writer === b.id && v.roles.pinned.writer === b.id
    }, 10_000, 100)

    // Delete the room: its volunteers are told and disconnected, the page says so, the room is gone.
    const gone = nextEvent<Any>(a.s, 'error', 'a told the room is deleted', (e) => e.code === 'room-deleted')
    await host.getByRole('button', { name: 'Delete room' }).click()
    await gone
    await host.getByText(`Room ${code} was deleted`).waitFor()
    expect((await fetch(url)).status).toBe(404)
    await ctx.close()
  }, 120_000)

  it('a tab keeps its peer id across a reload; a second tab of the same browser is another peer', async () => {
    const { browser, server } = env
    const { room } = await createRoom(server, {})
    const url = roomUrl(server, room)
    const peers = async () => (await getJson<RoomResponse>(url)).body.peers
    const ctx = await volunteerContext(browser, server.url)
    const first = await ctx.newPage()
    first.on('pageerror', (e) => console.error('[first] pageerror', e.message))
    await first.goto(`${server.url}/?room=${room}&backend=wasm&name=First`)
    const id = await waitFor('the tab in the roster under a key id', async () => (await peers()).find((p) => p.name === 'First')?.id, 90_000, 250)
    expect(id).toMatch(/^k-[0-9a-f]{24}$/)
    const second = await ctx.newPage()
    await second.goto(`${server.url}/?room=${room}&backend=wasm&name=Second`)
    const other = await waitFor('the second tab in the roster', async () => (await peers()).find((p) => p.name === 'Second')?.id, 90_000, 250)
    expect(other).toMatch(/^k-/)
    expect(other).not.toBe(id)
    await first.reload()
    await first.getByRole('list', { name: 'Event log' }).filter({ hasText: `joined room ${room} as ${id}` }).waitFor({ timeout: 90_000 })
    await waitFor('back in the roster as itself, once', async () => {
      const ps = await peers()
      return ps.length === 2 && ps.filter((p) => p.id === id).length === 1 && ps.some((p) => p.id === other)
    }, 90_000, 250)
    await ctx.close()
  }, 300_000)
})
