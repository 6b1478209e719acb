import { ALGORITHM_DESCRIPTORS } from '../../../shared/algorithms/descriptors'
import type { CapabilityIssue } from '../../../shared/protocol/signaling'
import type { SessionSnapshot } from '../../session/types'

/**
 * Tells the volunteer why this tab trains without WebGPU or without cross-origin isolation, and
 * what would fix it (client/runtime/backend.ts diagnoseCapabilities decides which). The
 * dashboard's peer table shows the same verdict as a short tag (CAPABILITY_TAG).
 */

/** Short labels for the dashboard's peer table; the key is the wire code. */
export const CAPABILITY_TAG: Record<CapabilityIssue, { label: string; help: string }> = {
  'insecure-context': { label: 'http only', help: 'opened over plain http on a network address: no WebGPU, no shared memory; serve HTTPS (npm start -- --https)' },
  'no-webgpu-api': { label: 'no WebGPU', help: 'this browser has no WebGPU (navigator.gpu)' },
  'no-adapter': { label: 'no GPU adapter', help: 'WebGPU found no GPU adapter (driver, or WebGPU disabled)' },
  'gpu-blocklisted': { label: 'GPU blocklisted', help: 'the browser renders in software: its GPU is blocklisted or missing' },
  'software-adapter': { label: 'software GPU', help: 'only a software WebGPU adapter, slower than WebAssembly: skipped' },
  'not-isolated': { label: 'not isolated', help: 'no cross-origin isolation: no SharedArrayBuffer, so lap-sgd runs one updater and wasm one thread' },
}

function webgpuLine(issues: readonly CapabilityIssue[]): string | null {
  if (issues.includes('no-webgpu-api'))
    return 'This browser has no WebGPU. A current Chrome or Edge has it (in Firefox and Safari it may need to be switched on in the settings).'
  if (issues.includes('gpu-blocklisted'))
    return 'The browser does not use this computer’s GPU (its driver is blocklisted, or there is none), so WebGPU has no adapter. Updating the graphics driver usually fixes it; chrome://gpu says why.'
  if (issues.includes('no-adapter'))
    return 'WebGPU found no GPU adapter. Updating the graphics driver, or enabling hardware acceleration in the browser settings, usually fixes it; chrome://gpu says why.'
  if (issues.includes('software-adapter'))
    return 'WebGPU only offers a software adapter here (no usable GPU), which is slower than WebAssembly, so this tab uses the fastest measured backend instead.'
  return null
}

export function CapabilityNotice({ snapshot: s }: { snapshot: SessionSnapshot }) {
  const issues = s.capability
  if (issues.length === 0) return null
  const lapSgd = s.config && ALGORITHM_DESCRIPTORS[s.config.algorithm].hogwild ? s.config : null
  const oneUpdater = lapSgd && issues.includes('not-isolated')
    ? ` This room’s ${lapSgd.algorithm} therefore runs one updater in this tab instead of ${lapSgd.updaters} workers.`
    : ''
  if (issues.includes('insecure-context')) {
    const host = typeof location === 'undefined' ? 'this address' : location.host
    return (
      <p className="banner warn" role="status" data-testid="capability-notice" data-issues={issues.join(' ')}>
        This tab trains without WebGPU and without shared-memory workers: it was opened over plain http on {host}, and
        browsers keep both for secure (https) pages.{oneUpdater} It still helps the swarm. Fix: ask the host to start the
        server with <code>npm start -- --https</code> and open the https:// address.
      </p>
    )
  }
  const gpu = webgpuLine(issues)
  const isolation = issues.includes('not-isolated')
    ? `This page is not cross-origin isolated, so there is no shared memory (SharedArrayBuffer).${oneUpdater} The server sends the headers that allow it; a browser extension or an old browser may be in the way.`
    : null
  return (
    <p className="banner warn compact" role="status" data-testid="capability-notice" data-issues={issues.join(' ')}>
      {[gpu, isolation].filter(Boolean).join(' ')}
    </p>
  )
}
