// Copies tfjs-backend-wasm's binaries into public/tfjs-wasm/ so the browser loads them from our
// own server (setWasmPaths('/tfjs-wasm/')), never from a CDN. Run before `vite build`.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')
const out = join(root, 'public', 'tfjs-wasm')
mkdirSync(out, { recursive: true })
const files = readdirSync(dist).filter((f) => f.endsWith('.wasm'))
if (files.length === 0) throw new Error(`no .wasm files in ${dist}`)
for (const f of files) copyFileSync(join(dist, f), join(out, f))
console.log(`copy-wasm: ${files.join(', ')} → public/tfjs-wasm/`)
