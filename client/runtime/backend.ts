import * as tf from '@tensorflow/tfjs'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
// Registers the webgpu backend only where navigator.gpu exists (harmless in Node).
import '@tensorflow/tfjs-backend-webgpu'
import { buildModel, initParams, unflatten } from './models'
import type { CapabilityIssue } from '../../shared/protocol/signaling'

/**
 * Backend choice by measurement (on a GPU-less machine WebGPU is a slow
 * SwiftShader fallback and wasm is several times faster than webgl, so nothing is assumed).
 */
export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const
export type BackendName = (typeof BACKENDS)[number]

export interface BackendMeasurement {
  backend: BackendName
  ok: boolean
  /** Training steps per second of the 784-128-10 MLP at batch 64 (only when ok). */
  stepsPerSec?: number
  note?: string
}

export interface BackendChoice {
  backend: BackendName
  reason: string
  measurements: BackendMeasurement[]
}

export interface SelectBackendOptions {
  /** Forced backend (`?backend=`); measured choice when absent. */
  override?: string | null
  candidates?: readonly BackendName[]
  /** Where the browser finds tfjs-backend-wasm's .wasm files (served from public/). */
  wasmPath?: string
  /** Time budget per candidate benchmark. */
  benchMs?: number
  /** Accept a software (fallback) WebGPU adapter as a candidate. */
  allowFallbackWebgpu?: boolean
}

/** Default location of the wasm binaries copied by tools/copy-wasm.mjs into public/tfjs-wasm/. */
export const DEFAULT_WASM_PATH = '/tfjs-wasm/'

export function isBackendName(s: unknown): s is BackendName {
  return typeof s === 'string' && (BACKENDS as readonly string[]).includes(s)
}

/** `?backend=wasm` → 'wasm'; anything else → null. */
export function backendFromSearch(search: string): BackendName | null {
  const v = new URLSearchParams(search).get('backend')
  return isBackendName(v) ? v : null
}

const isBrowserLike = typeof (globalThis as { document?: unknown }).document !== 'undefined' ||
  typeof (globalThis as { importScripts?: unknown }).importScripts === 'function' ||
  (typeof navigator !== 'undefined' && typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node !== 'string')

let wasmPathSet = false
/** Must run before the wasm backend first initialises. In Node tfjs finds the files in node_modules. */
export function configureWasm(path = DEFAULT_WASM_PATH): void {
  if (wasmPathSet || !isBrowserLike) return
  setWasmPaths(path)
  wasmPathSet = true
}

interface GpuAdapterLike {
  isFallbackAdapter?: boolean
  info?: { isFallbackAdapter?: boolean; description?: string; vendor?: string }
}

/** Inspects the WebGPU adapter; requestAdapter() returns null now and then, so retry. */
async function probeWebgpu(): Promise<{ available: boolean; fallback: boolean; note: string }> {
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } } }).navigator?.gpu
  if (!gpu) return { available: false, fallback: false, note: 'navigator.gpu missing' }
  for (let attempt = 0; attempt < 3; attempt++) {
    let adapter: GpuAdapterLike | null = null
    try {
      adapter = await gpu.requestAdapter()
    } catch {
      adapter = null
    }
    if (adapter) {
      const fallback = Boolean(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter)
      const desc = [adapter.info?.vendor, adapter.info?.description].filter(Boolean).join(' ')
      return { available: true, fallback, note: fallback ? `software fallback adapter ${desc}`.trim() : desc || 'adapter' }
    }
  }
  return { available: false, fallback: false, note: 'requestAdapter() returned null 3 times' }
}

/** Why this tab lacks WebGPU or cross-origin isolation (shared/protocol/signaling.ts CAPABILITY_ISSUES), root cause first. */
export interface CapabilityDiagnosis {
  issues: CapabilityIssue[]
  /** The WebGPU adapter (vendor and description) or the WebGL renderer that led to the verdict, for the page's details. */
  detail: string
}

interface CapabilityGlobals {
  isSecureContext?: boolean
  crossOriginIsolated?: boolean
  document?: { createElement(tag: 'canvas'): { getContext(kind: string): unknown } }
}

/**
 * WebGL's renderer string; a software one (SwiftShader, llvmpipe) means the browser renders
 * without the GPU, which is what a blocklisted or missing GPU looks like from a page.
 */
function webglRenderer(g: CapabilityGlobals): string | null {
  try {
    const gl = g.document?.createElement('canvas').getContext('webgl') as {
      getExtension(n: string): { UNMASKED_RENDERER_WEBGL: number } | null
      getParameter(p: number): unknown
      RENDERER: number
    } | null
    if (!gl) return null
    const ext = gl.getExtension('WEBGL_debug_renderer_info')
    const r = gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER)
    return typeof r === 'string' ? r.slice(0, 200) : null
  } catch {
    return null
  }
}

const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render|microsoft basic/i

/**
 * Says which of WebGPU and cross-origin isolation this tab lacks, and why: an insecure context
 * (http:// on a LAN address) hides both; otherwise navigator.gpu may be missing, find no
 * adapter (a software WebGL renderer suggests a blocklisted or absent GPU), or offer only a
 * software fallback adapter. Node peers have none of these concerns: they get [].
 */
export async function diagnoseCapabilities(g: CapabilityGlobals = globalThis as CapabilityGlobals): Promise<CapabilityDiagnosis> {
  if (!isBrowserLike) return { issues: [], detail: '' }
  const issues: CapabilityIssue[] = []
  const isolated = g.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined'
  if (g.isSecureContext === false) {
    issues.push('insecure-context')
    if (!isolated) issues.push('not-isolated')
    return { issues, detail: '' }
  }
  const probe = await probeWebgpu()
  let detail = probe.note
  if (!probe.available && probe.note === 'navigator.gpu missing') issues.push('no-webgpu-api')
  else if (!probe.available) {
    const renderer = webglRenderer(g)
    if (renderer && SOFTWARE_RENDERER.test(renderer)) {
      issues.push('gpu-blocklisted')
      detail = `WebGL renders with ${renderer}`
    } else issues.push('no-adapter')
  } else if (probe.fallback) issues.push('software-adapter')
  if (!isolated) issues.push('not-isolated')
  return { issues, detail }
}

async function activate(name: BackendName): Promise<boolean> {
  if (name === 'wasm') configureWasm()
  if (!tf.findBackendFactory(name)) return false
  try {
    // A failed setBackend leaves no active backend, and tf.ready() would then initialise the
    // best registered one by itself (wasm, before configureWasm: Firefox without WebGL).
    if (!(await tf.setBackend(name))) return false
    await tf.ready()
    return tf.getBackend() === name
  } catch {
    return false
  }
}

/** Steps/s of a few real training steps (forward, backward, SGD update, loss read back). */
async function benchmark(budgetMs: number): Promise<number> {
  const spec = buildModel('mlp', { rows: 28, cols: 28, numClasses: 10 })
  const vars = tf.tidy(() => unflatten(spec, initParams(spec, 1)).map((t) => tf.variable(t)))
  const x = tf.randomUniform([64, spec.features], 0, 1, 'float32', 1) as tf.Tensor2D
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 10), 'int32'), 10))
  const step = async () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, spec.forward(vars, x)) as tf.Scalar,
        vars,
      )
      for (const v of vars) v.assign(tf.sub(v, tf.mul(0.01, grads[v.name])))
      return value
    })
    await loss.data()
    loss.dispose()
  }
  try {
    for (let i = 0; i < 2; i++) await step() // warm-up: shader compilation, wasm JIT
    const t0 = performance.now()
    let n = 0
    while (n < 200 && (n < 3 || performance.now() - t0 < budgetMs)) {
      await step()
      n++
    }
    return (n * 1000) / (performance.now() - t0)
  } finally {
    for (const v of vars) v.dispose()
    x.dispose()
    y.dispose()
  }
}

/**
 * Picks the fastest available backend (or the forced one) and leaves it active. Fallback
 * WebGPU adapters are skipped unless forced or allowed: they are reliably the slowest here.
 */
export async function selectBackend(opts: SelectBackendOptions = {}): Promise<BackendChoice> {
  // Before any candidate: tfjs may initialise wasm on its own when another backend fails.
  configureWasm(opts.wasmPath)
  const measurements: BackendMeasurement[] = []
  if (opts.override != null && opts.override !== '') {
    if (!isBackendName(opts.override)) throw new Error(`unknown backend '${opts.override}' (use ${BACKENDS.join(', ')})`)
    if (await activate(opts.override)) return { backend: opts.override, reason: 'forced by ?backend=', measurements }
    measurements.push({ backend: opts.override, ok: false, note: 'forced backend failed to initialise' })
  }
  const candidates = opts.candidates ?? BACKENDS
  const budget = opts.benchMs ?? 400
  for (const name of candidates) {
    if (name === 'webgpu') {
      const probe = await probeWebgpu()
      if (!probe.available || (probe.fallback && !opts.allowFallbackWebgpu)) {
        measurements.push({ backend: name, ok: false, note: probe.note })
        continue
      }
    }
    if (!(await activate(name))) {
      measurements.push({ backend: name, ok: false, note: 'not available' })
      continue
    }
    try {
      measurements.push({ backend: name, ok: true, stepsPerSec: await benchmark(budget) })
    } catch (e) {
      measurements.push({ backend: name, ok: false, note: `benchmark failed: ${(e as Error).message}` })
    }
  }
  const ok = measurements.filter((m) => m.ok).sort((a, b) => (b.stepsPerSec ?? 0) - (a.stepsPerSec ?? 0))
  const best = ok[0]
  if (!best) {
    if (!(await activate('cpu'))) throw new Error('no tfjs backend could be initialised')
    return { backend: 'cpu', reason: 'no candidate worked; using cpu', measurements }
  }
  if (!(await activate(best.backend))) throw new Error(`backend ${best.backend} stopped working after its benchmark`)
  const prefix = opts.override ? `forced '${opts.override}' failed; ` : ''
  const rest = ok.slice(1).map((m) => `${m.backend} ${m.stepsPerSec!.toFixed(1)}`).join(', ')
  return {
    backend: best.backend,
    reason: `${prefix}fastest measured: ${best.stepsPerSec!.toFixed(1)} steps/s${rest ? ` (vs ${rest})` : ''}`,
    measurements,
  }
}
