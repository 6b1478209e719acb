import { ALGORITHM_INFO } from '../../shared/config'
import type { AwayReason, BackendName } from '../../shared/protocol/signaling'
import type { LogLine } from './types'

/**
 * What the session says to people: the lines of a tab's activity log. Each line is in plain
 * words a student follows (`text`), with the technical account beside it (`detail`: ids, round
 * numbers, backend measurements) for whoever opens the details. Kept apart from the session's
 * logic so the wording can change (or be translated) without touching the lifecycle.
 */
export interface Said {
  text: string
  detail?: string
}

/** A log line as one string (Node volunteers' console, bench logs): the words, then the detail. */
export function formatLogLine(l: LogLine): string {
  return `${l.at} ${l.text}${l.detail && l.detail !== l.text ? ` [${l.detail}]` : ''}`
}

/** Something went wrong in a way the user cannot act on: say so briefly, keep the message as detail. */
function hiccup(text: string, detail: string): Said {
  return { text, detail: detail.slice(0, 300) }
}

/**
 * An algorithm's log event as a line for the tab's activity list (people read it, so no raw
 * JSON): the common events in words, the rest as its name in words, with "event: key value, …"
 * as the detail.
 */
export function describeEvent(event: string, detail?: Record<string, unknown>): Said {
  const d = detail ?? {}
  const peer = (v: unknown) => (typeof v === 'string' ? v.slice(0, 8) : String(v))
  const parts = Object.entries(d)
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v).slice(0, 40)}`)
  const technical = parts.length ? `${event}: ${parts.join(', ')}` : event
  if (event === 'realign') return { text: 'Caught up with the others', detail: `realign: round ${String(d.from)} → ${String(d.to)}` }
  if (event === 'rejected') return { text: 'Ignored a damaged message from a neighbour', detail: `refused a message from ${peer(d.from)}: ${String(d.why ?? 'invalid')}` }
  if (event.endsWith('/bootstrap') && typeof d.donors === 'number')
    return { text: `Started from what ${d.donors === 1 ? 'a neighbour has' : `${d.donors} neighbours have`} learned so far`, detail: technical }
  if (event.endsWith('/ps-start')) return { text: 'This tab now collects everyone’s updates for the room', detail: `${technical} (parameter server)` }
  const name = event.split('/').pop()!.replace(/[-_]+/g, ' ')
  return { text: name.charAt(0).toUpperCase() + name.slice(1), detail: technical }
}

const BACKEND_WORDS: Record<BackendName, string> = {
  webgpu: 'the graphics card (WebGPU)',
  webgl: 'the graphics card (WebGL)',
  wasm: 'the processor (WebAssembly)',
  cpu: 'the processor (plain JavaScript, the slowest way)',
}

const REJOIN_WORDS: Record<string, string> = {
  'the room dropped this tab after missed deadlines': 'the others stopped waiting for this tab',
  'reconnected to the server': 'the connection to the server is back',
  'no longer in the roster': 'the room lost track of this tab',
}

const END_WORDS: Record<string, string> = {
  left: 'you left the room',
  'removed by the host': 'the teacher removed this tab from the room',
}

export const say = {
  backend: (name: BackendName, reason: string): Said => ({
    text: `Computing on ${BACKEND_WORDS[name] ?? name}${/forced/.test(reason) ? ', as the link asks' : ''}`,
    detail: `backend ${name}: ${reason}`,
  }),
  joined: (room: string, self: string, name: string | null): Said => ({
    text: `Joined room ${room}${name ? ` as ${name}` : ''}`,
    detail: `joined room ${room} as ${self}`,
  }),
  welcomeBack: (samples: number): Said => ({
    text: `Welcome back: the ${samples.toLocaleString('en')} samples you already trained still count`,
    detail: `credit kept across reload: ${samples} samples`,
  }),
  steppedOut: (reason: AwayReason): Said =>
    reason === 'paused'
      ? { text: 'Paused: the others carry on without you', detail: 'paused: stepped out of the roster' }
      : { text: 'This tab is in the background, so it stepped aside; come back to it to rejoin', detail: 'tab hidden past the grace period: stepped out of the roster until it is visible again' },
  back: (): Said => ({ text: 'Back: rejoining the others', detail: 'asking to re-enter the roster' }),
  rejoining: (reason: string): Said => ({ text: `Rejoining the room: ${REJOIN_WORDS[reason] ?? reason}`, detail: `rejoining: ${reason}` }),
  joinRetry: (attempt: number): Said => ({
    text: 'The server did not answer in time; asking again',
    detail: `join unanswered within its deadline: retry ${attempt}`,
  }),
  cooldown: (ms: number): Said => ({
    text: `The room asks this tab to wait ${Math.ceil(ms / 1000)} s before rejoining`,
    detail: `eviction cooldown: ${ms} ms`,
  }),
  roomMoving: (ms: number): Said => ({
    text: 'The room is moving to another server; joining again in a moment',
    detail: `room busy (moving between server processes): retry in ${ms} ms`,
  }),
  ended: (reason: string): Said => ({ text: `Stopped: ${END_WORDS[reason] ?? reason}`, detail: `session ended: ${reason}` }),
  modelThread: (onWorker: boolean, browser: boolean, note?: string): Said => ({
    text: onWorker ? 'The model trains in the background, so this page stays responsive' : 'The model trains on this page',
    detail: `model runs on ${onWorker ? 'a worker thread' : browser ? 'the page thread' : 'the main thread'}${note ? ` (${note})` : ''}`,
  }),
  resumed: (step: number): Said => ({ text: `Picked up the room’s saved model (step ${step})`, detail: `resumed from the room checkpoint at step ${step}` }),
  rollingBack: (step: number): Said => ({
    text: `The teacher went back to an earlier saved model (step ${step}); loading it`,
    detail: `the host rolled the room back to its checkpoint at step ${step}: reloading it`,
  }),
  checkpointSkipped: (checkpointStep: number, swarmStep: number): Said => ({
    text: 'Started from the others’ model: they are further along than the saved one',
    detail: `checkpoint (step ${checkpointStep}) not used: the swarm is at step ${swarmStep}`,
  }),
  training: (algorithm: string, topology: string, dataset: string, model: string): Said => ({
    text: `Training started: learning ${dataset === 'mnist' ? 'handwritten digits' : dataset === 'fashion-mnist' ? 'pictures of clothes' : dataset} together with the others`,
    detail: `training ${algorithm} (${ALGORITHM_INFO[algorithm as keyof typeof ALGORITHM_INFO]?.title ?? algorithm}) on ${topology}, ${dataset}/${model}`,
  }),
  diverged: (step: number, reason: string, hint: string): Said => ({
    text: `Training stopped at step ${step}: the model went off the rails. ${hint}`,
    detail: `diverged at step ${step}: ${reason}`,
  }),
  slowed: (factor: number): Said => ({
    text: factor > 1 ? `For the demo, the teacher slowed this tab down ×${factor}` : 'The teacher gave this tab its full speed back',
    detail: factor > 1 ? `host slowed this tab down ×${factor}` : 'host restored this tab\'s speed',
  }),
  latency: (ms: number): Said => ({
    text: ms > 0 ? `For the demo, the teacher delays every message of this tab by ${ms} ms` : 'The teacher removed the delay',
    detail: ms > 0 ? `host added ${ms} ms latency to this tab's links` : 'host removed the added latency',
  }),
  disconnected: (): Said => ({
    text: 'For the demo, the teacher cut this tab’s connections; it reconnects by itself',
    detail: 'the host disconnected this tab: links dropped, rejoining by itself',
  }),
  stepDeadline: (message: string) => hiccup('A neighbour was slow to answer; carrying on without it', `step deadline passed: ${message}`),
  reportFailed: (message: string) => hiccup('Could not tell the room how this tab is doing; trying again', `report failed: ${message}`),
  membershipError: (message: string) => hiccup('Could not read the room’s list of members', `membership error: ${message}`),
  checkpointNotLoaded: (message: string) => hiccup('Could not load the room’s saved model; starting from the others’', `checkpoint not loaded: ${message}`),
  progressNotRead: (message: string) => hiccup('Could not read the room’s progress; trying again later', `room progress not read: ${message}`),
  dropFailed: (message: string) => hiccup('Could not cut the connection for the demo', `could not drop the connection: ${message}`),
  error: (message: string): Said => ({ text: `Something went wrong: ${message.slice(0, 160)}`, detail: `error: ${message}` }),
}
