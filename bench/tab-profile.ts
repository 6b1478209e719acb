import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { launchBrowser } from '../tests/support/browser'
import { startTestServer } from '../tests/support/server'
import { argOf, ensureNetns } from './common'
import { openTrainingTabs } from './tabs'

/**
 * A V8 CPU profile of a training tab's page thread: 2 headless Chromium tabs in a dpsgd ring
 * (wasm, MNIST, batch 32, the model where the tab puts it by default), the first one profiled
 * through CDP for `--seconds`, written as a .cpuprofile (open it in Chrome DevTools) and
 * summarised on stdout by self time. This is how the whole-arena postMessage copies were found
 * (docs/benchmarks-history.md, 2026-12-07).
 *   npm run build && sh tools/netns-run.sh npx tsx bench/tab-profile.ts [--model mlp|cnn] [--seconds 8] [--out FILE]
 */
await ensureNetns(fileURLToPath(import.meta.url))
const model = argOf('--model') ?? 'mlp'
const seconds = Number(argOf('--seconds') ?? 8)
const out = argOf('--out') ?? `/tmp/tab-${model}.cpuprofile`
if ((model !== 'mlp' && model !== 'cnn') || !(seconds > 0)) {
  console.error('usage: bench/tab-profile.ts [--model mlp|cnn] [--seconds S] [--out FILE]')
  process.exit(2)
}
type Profile = { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[] }

const server = await startTestServer()
const browser = await launchBrowser()
try {
  const room = 'tab-profile'
  const config = { model, dataset: 'mnist', algorithm: 'dpsgd', topology: 'ring', batchSize: 32, totalSteps: 100000, partition: 'iid' }
  const pages = await openTrainingTabs(server.url, browser, { room, config, tabs: 2 })
  const cdp = await pages[0].context().newCDPSession(pages[0])
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.start')
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const { profile } = (await cdp.send('Profiler.stop')) as unknown as { profile: Profile }
  writeFileSync(out, JSON.stringify(profile))
  const byNode = new Map<number, number>()
  profile.samples.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + profile.timeDeltas[i]))
  const self = new Map<string, number>()
  for (const n of profile.nodes) {
    const us = byNode.get(n.id)
    if (!us) continue
    const f = n.callFrame
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop() ?? ''}:${f.lineNumber}`
    self.set(key, (self.get(key) ?? 0) + us / 1000)
  }
  console.log(`page thread of tab 0, ${seconds} s, ${model}: self time by function (ms)`)
  for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${ms.toFixed(1).padStart(8)}  ${k}`)
  console.log('wrote', out)
} finally {
  await browser.close()
  await server.close()
}
process.exit(0)
