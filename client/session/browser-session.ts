import { HIDDEN_GRACE_DEFAULT_MS } from '../../shared/config'
import { friendlyName, normalizeName } from '../../shared/names'
import type { BackendName } from '../../shared/protocol/signaling'
import { loadBrowserIdentity } from '../identity/browser-identity'
import { SignalingClient } from '../mesh/signaling-client'
import { diagnoseCapabilities, selectBackend } from '../runtime/backend'
import { browserComputeWorkerSupported, startBrowserWorkerCompute } from '../runtime/compute-worker/browser'
import { fetchDataset } from '../runtime/data-loader'
import { createBrowserHogwildPool, hogwildSupported } from '../runtime/hogwild/browser-pool'
import { fetchRoomCheckpoint } from './checkpoint'
import { createWebRtcMesh, makeTrainer, makeWorkerTrainer, shardRequest, signalingPort } from './platform'
import { fetchRoomProgress } from './room-progress'
import { SwarmSession, type SessionPlatform, type Trainer } from './swarm-session'
import type { SessionHandle } from './types'
import { keepScreenOn } from './wake-lock'

/**
 * How long a tab may be hidden before it steps out of the roster: the room's `hiddenGraceMs`
 * (the host sets it; long enough by default for a phone's screen to dim and come back), or the
 * default before the tab has the room's config.
 */
export function hiddenGraceMs(config: { hiddenGraceMs?: number } | null): number {
  const v = config?.hiddenGraceMs
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : HIDDEN_GRACE_DEFAULT_MS
}

/** Where the name a person typed is kept (one per browser profile: it is the person's). */
const NAME_KEY = 'tabswarm:name'
/** A tab without a stable id (insecure origin) still keeps its generated name across reloads. */
const NAME_SEED_KEY = 'tabswarm:name-seed'

/** The name this browser's user chose before, if any. */
export function savedName(): string | null {
  try {
    return normalizeName(localStorage.getItem(NAME_KEY))
  } catch {
    return null
  }
}

/** Remembers (or, with null or blank, forgets) the user's chosen name for later joins and reloads. */
export function saveName(name: string | null): void {
  try {
    const n = normalizeName(name)
    if (n) localStorage.setItem(NAME_KEY, n)
    else localStorage.removeItem(NAME_KEY)
  } catch {
    // No storage (private mode): the name lasts for this page only.
  }
}

function tabSeed(): string {
  try {
    let seed = sessionStorage.getItem(NAME_SEED_KEY)
    if (!seed) {
      seed = crypto.getRandomValues(new Uint32Array(2)).join('-')
      sessionStorage.setItem(NAME_SEED_KEY, seed)
    }
    return seed
  } catch {
    return String(Math.random())
  }
}

/**
 * The name a tab joins with: the one given (the form, ?name=), else the user's saved one, else a
 * friendly name derived from the tab's stable id ("Brave Otter"), so a reload keeps it.
 */
export async function volunteerName(given: string | undefined, identity: Promise<{ id: string } | null>): Promise<string> {
  const chosen = normalizeName(given) ?? savedName()
  if (chosen) return chosen
  const id = await identity.catch(() => null)
  return friendlyName(id?.id ?? tabSeed())
}

/** `?compute=main` keeps the model on the page thread (to compare, or where workers misbehave). */
export function computeThreadFromSearch(search: string): 'worker' | 'main' | null {
  const v = new URLSearchParams(search).get('compute')
  return v === 'worker' || v === 'main' ? v : null
}

/**
 * A volunteer tab: socket.io to this page's origin, the browser's own RTCPeerConnection, the
 * fastest measured tfjs backend, the dataset shard from this server, Web Workers for LAP-SGD.
 * On wasm and cpu the model trains on a Web Worker (compute-worker/browser.ts says why);
 * WebGPU and WebGL kernels run on the GPU and stay on the page thread.
 */
export function createBrowserSession(opts: { room: string; backend?: BackendName; name?: string; computeThread?: 'worker' | 'main' }): SessionHandle {
  const origin = window.location.origin
  const wantThread = opts.computeThread ?? computeThreadFromSearch(window.location.search) ?? 'worker'
  let chosen: BackendName = 'cpu'
  // A key pair in IndexedDB, one per tab: the peer id survives reloads (null on insecure origins: the socket id then).
  const identity = loadBrowserIdentity()
  const client = new SignalingClient(origin, { socket: { transports: ['websocket'] }, identity, room: opts.room })
  const platform: SessionPlatform = {
    agent: 'browser',
    serverUrl: origin,
    signaling: signalingPort(client),
    async selectBackend(forced) {
      const c = await selectBackend({ override: forced ?? null })
      chosen = c.backend
      return { backend: c.backend, reason: c.reason, capability: (await diagnoseCapabilities()).issues }
    },
    async prepare(config, shard, onProgress) {
      // Progress: the train shard is most of the bytes, the test split the rest.
      const train = await fetchDataset(config.dataset, 'train', {
        shard: shardRequest(config, shard),
        onProgress: (l, t) => onProgress(t ? 0.8 * (l / t) : 0.4),
      })
      const test = await fetchDataset(config.dataset, 'test', { testSubset: config.testSubset, onProgress: (l, t) => onProgress(0.8 + (t ? 0.2 * (l / t) : 0.1)) })
      return placeTrainer({
        want: wantThread, backend: chosen, workersSupported: browserComputeWorkerSupported(),
        onWorker: (b) => makeWorkerTrainer(config, train, test, shard.seed, b, startBrowserWorkerCompute),
        onPage: () => makeTrainer(config, train, test, shard.seed),
      })
    },
    createMesh: ({ self, config, compute }) => createWebRtcMesh({ self, config, compute, client }),
    createHogwild: hogwildSupported()
      ? async (config, trainer, shard) =>
          createBrowserHogwildPool({
            model: config.model, train: trainer.train,
            paramCount: trainer.compute.paramCount, initial: await trainer.compute.readParams(),
            batchSize: config.batchSize, seed: shard.seed, updaters: config.updaters,
          })
      : undefined,
    fetchCheckpoint: (room) => fetchRoomCheckpoint(origin, room),
    fetchRoomProgress: (room) => fetchRoomProgress(origin, room),
  }
  const session = new SwarmSession(platform, opts)
  void volunteerName(opts.name, identity).then((name) => {
    session.setName(name)
    return session.start()
  })
  keepScreenOn((cb) => session.subscribe(cb), { doc: document, wakeLock: navigator.wakeLock }, (held) => session.setScreenOn(held))
  // docs/algorithms.md "Graceful leave" graceful leave: hand the model to neighbours once when the tab goes away.
  window.addEventListener('pagehide', () => void session.leave())
  // A hidden tab keeps its peers informed: after the grace period it steps out of the roster
  // (its timers and rAF are throttled, so it would stall its neighbours), and back when shown.
  let hiddenTimer: ReturnType<typeof setTimeout> | null = null
  const onVisibility = () => {
    if (document.visibilityState === 'hidden') {
      hiddenTimer ??= setTimeout(() => {
        hiddenTimer = null
        session.setHidden(true)
      }, hiddenGraceMs(session.snapshot().config))
    } else {
      if (hiddenTimer) clearTimeout(hiddenTimer)
      hiddenTimer = null
      session.setHidden(false)
    }
  }
  document.addEventListener('visibilitychange', onVisibility)
  if (document.visibilityState === 'hidden') onVisibility()
  return session
}

/**
 * Where a tab's model goes: a Web Worker when asked for (the default) and the backend computes on
 * the CPU (wasm, cpu); the page thread otherwise. A tab that cannot start the worker (blocked
 * script, no module workers, the worker's own deadline) still trains, on the page thread, and
 * says why in computeNote (the session logs it).
 */
export async function placeTrainer(o: {
  want: 'worker' | 'main'; backend: BackendName; workersSupported: boolean
  onWorker(backend: 'wasm' | 'cpu'): Promise<Trainer>
  onPage(): Trainer
}): Promise<Trainer> {
  const cpuLike = o.backend === 'wasm' || o.backend === 'cpu'
  if (o.want === 'main' || !cpuLike) return o.onPage()
  if (!o.workersSupported) return { ...o.onPage(), computeNote: 'no module Web Workers in this browser' }
  try {
    return await o.onWorker(o.backend as 'wasm' | 'cpu')
  } catch (e) {
    return { ...o.onPage(), computeNote: `worker failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 160) }
  }
}

