import type { AwayReason } from '../../shared/protocol/signaling'

/**
 * What the session says to people: the lines of a tab's activity log. Kept apart from the
 * session's logic so the wording can change (or be translated) without touching the lifecycle.
 */

/**
 * An algorithm's log event as a line for the tab's activity list (people read it, so no raw
 * JSON): the common events in words, the rest as "event: key value, …".
 */
export function describeEvent(event: string, detail?: Record<string, unknown>): string {
  const d = detail ?? {}
  const peer = (v: unknown) => (typeof v === 'string' ? v.slice(0, 8) : String(v))
  if (event === 'realign') return `caught up with the neighbours (round ${String(d.from)} → ${String(d.to)})`
  if (event === 'rejected') return `refused a message from ${peer(d.from)}: ${String(d.why ?? 'invalid')}`
  if (event.endsWith('/bootstrap') && typeof d.donors === 'number') return `started from the models of ${d.donors} neighbour${d.donors === 1 ? '' : 's'}`
  if (event.endsWith('/ps-start')) return 'this tab now holds the parameter server'
  const parts = Object.entries(d)
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v).slice(0, 40)}`)
  return parts.length ? `${event}: ${parts.join(', ')}` : event
}

export const say = {
  backend: (name: string, reason: string) => `backend ${name}: ${reason}`,
  joined: (room: string, self: string) => `joined room ${room} as ${self}`,
  steppedOut: (reason: AwayReason) =>
    reason === 'paused' ? 'paused: stepped out of the roster, neighbours carry on without this tab' : 'tab hidden: stepped out of the roster until it is visible again',
  back: () => 'back: asking to re-enter the roster',
  rejoining: (reason: string) => `rejoining: ${reason}`,
  cooldown: (ms: number) => `the room asks this tab to wait ${Math.ceil(ms / 1000)} s before rejoining`,
  ended: (reason: string) => `session ended: ${reason}`,
  modelThread: (onWorker: boolean, browser: boolean, note?: string) =>
    `model runs on ${onWorker ? 'a worker thread' : browser ? 'the page thread' : 'the main thread'}${note ? ` (${note})` : ''}`,
  resumed: (step: number) => `resumed from the room checkpoint at step ${step}`,
  rollingBack: (step: number) => `the host rolled the room back to its checkpoint at step ${step}: reloading it`,
  checkpointSkipped: (checkpointStep: number, swarmStep: number) => `checkpoint (step ${checkpointStep}) not used: the swarm is at step ${swarmStep}`,
  training: (algorithm: string, topology: string, dataset: string, model: string) => `training ${algorithm} on ${topology}, ${dataset}/${model}`,
  diverged: (step: number, reason: string, hint: string) => `training stopped at step ${step}: the model diverged (${reason}). ${hint}`,
  slowed: (factor: number) => (factor > 1 ? `host slowed this tab down ×${factor}` : 'host restored this tab\'s speed'),
  latency: (ms: number) => (ms > 0 ? `host added ${ms} ms latency to this tab's links` : 'host removed the added latency'),
  disconnected: () => 'the host disconnected this tab: links dropped, rejoining by itself',
}
