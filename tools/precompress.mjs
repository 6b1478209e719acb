// Writes a brotli (.br) and a gzip (.gz) variant beside every compressible file of the client build,
// once at build time, so the server (signaling-server/static.ts, sirv) sends them without
// compressing per request. Run after `vite build`; the output directory is TABSWARM_DIST or dist/.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = process.env.TABSWARM_DIST ?? join(root, 'dist')
const COMPRESSIBLE = /\.(js|mjs|css|html|json|map|svg|txt|wasm|webmanifest)$/i
/** Below this a variant saves less than its extra headers and file cost. */
const MIN_BYTES = 1024
/** A variant must save at least this fraction, or the original is served. */
const MIN_SAVING = 0.1

function* files(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* files(p)
    else if (e.isFile() && COMPRESSIBLE.test(e.name)) yield p
  }
}

let before = 0
let br = 0
let gz = 0
let count = 0
for (const path of files(dist)) {
  const size = statSync(path).size
  if (size < MIN_BYTES) continue
  const data = readFileSync(path)
  const brotli = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
      [constants.BROTLI_PARAM_MODE]: /\.wasm$/i.test(path) ? constants.BROTLI_MODE_GENERIC : constants.BROTLI_MODE_TEXT,
    },
  })
  const gzip = gzipSync(data, { level: 9 })
  if (brotli.length <= size * (1 - MIN_SAVING)) writeFileSync(`${path}.br`, brotli)
  if (gzip.length <= size * (1 - MIN_SAVING)) writeFileSync(`${path}.gz`, gzip)
  before += size
  br += Math.min(brotli.length, size)
  gz += Math.min(gzip.length, size)
  count++
}
const kb = (n) => `${(n / 1024).toFixed(0)} KiB`
console.log(`precompress: ${count} files in ${dist}: ${kb(before)} → brotli ${kb(br)}, gzip ${kb(gz)}`)
