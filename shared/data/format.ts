/**
 * Compact binary dataset format served at GET /data/:dataset/:split and decoded by every client.
 *
 * Layout (little-endian):
 *   0  u32 magic 'TSDS'       4  u16 version (1)     6  u8 dtype (0 = uint8 /255, 1 = float32)
 *   7  u8  numClasses         8  u32 count          12  u16 rows  14 u16 cols  (features = rows*cols)
 *   16 u32 checksum (FNV-1a over everything after the header)   20 u32 reserved (0)
 *   24 x: count*features values of dtype, then y: count uint8 labels.
 * The 24-byte header keeps float32 features 4-byte aligned, so decode can view them without copying.
 */
export const DATASET_MAGIC = 0x53445354 // 'TSDS' read as little-endian u32
export const DATASET_VERSION = 1
export const HEADER_BYTES = 24

export type PixelDtype = 'uint8' | 'float32'

export interface Dataset {
  /** Number of examples. */
  count: number
  /** Image height (1 for plain feature vectors). */
  rows: number
  /** Image width, or number of features. */
  cols: number
  numClasses: number
  dtype: PixelDtype
  /** count*rows*cols values, row-major per example. uint8 means value/255. */
  x: Uint8Array | Float32Array
  /** count labels in [0, numClasses). */
  y: Uint8Array
}

export function featuresOf(d: Pick<Dataset, 'rows' | 'cols'>): number {
  return d.rows * d.cols
}

/** Throws with a precise message if the dataset is internally inconsistent. */
export function validateDataset(d: Dataset): void {
  const f = featuresOf(d)
  if (!Number.isInteger(d.count) || d.count < 0) throw new Error(`dataset: bad count ${d.count}`)
  if (!Number.isInteger(d.rows) || d.rows < 1 || d.rows > 65535) throw new Error(`dataset: bad rows ${d.rows}`)
  if (!Number.isInteger(d.cols) || d.cols < 1 || d.cols > 65535) throw new Error(`dataset: bad cols ${d.cols}`)
  if (!Number.isInteger(d.numClasses) || d.numClasses < 1 || d.numClasses > 255)
    throw new Error(`dataset: bad numClasses ${d.numClasses}`)
  if (d.dtype === 'uint8' && !(d.x instanceof Uint8Array)) throw new Error('dataset: dtype uint8 needs Uint8Array x')
  if (d.dtype === 'float32' && !(d.x instanceof Float32Array)) throw new Error('dataset: dtype float32 needs Float32Array x')
  if (d.x.length !== d.count * f) throw new Error(`dataset: x has ${d.x.length} values, expected ${d.count * f}`)
  if (d.y.length !== d.count) throw new Error(`dataset: y has ${d.y.length} labels, expected ${d.count}`)
  for (let i = 0; i < d.y.length; i++)
    if (d.y[i] >= d.numClasses) throw new Error(`dataset: label ${d.y[i]} at ${i} ≥ numClasses ${d.numClasses}`)
  if (d.x instanceof Float32Array)
    for (let i = 0; i < d.x.length; i++) if (!Number.isFinite(d.x[i])) throw new Error(`dataset: non-finite feature at ${i}`)
}

function fnv1a(bytes: Uint8Array, start: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < bytes.length; i++) {
    h ^= bytes[i]
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export function encodeDataset(d: Dataset): Uint8Array {
  validateDataset(d)
  const xBytes = d.x.byteLength
  const out = new Uint8Array(HEADER_BYTES + xBytes + d.count)
  const view = new DataView(out.buffer)
  view.setUint32(0, DATASET_MAGIC, true)
  view.setUint16(4, DATASET_VERSION, true)
  view.setUint8(6, d.dtype === 'uint8' ? 0 : 1)
  view.setUint8(7, d.numClasses)
  view.setUint32(8, d.count, true)
  view.setUint16(12, d.rows, true)
  view.setUint16(14, d.cols, true)
  view.setUint32(20, 0, true)
  if (d.x instanceof Float32Array) {
    // Write explicitly little-endian so big-endian hosts (none today) still produce the same bytes.
    for (let i = 0; i < d.x.length; i++) view.setFloat32(HEADER_BYTES + 4 * i, d.x[i], true)
  } else {
    out.set(d.x, HEADER_BYTES)
  }
  out.set(d.y, HEADER_BYTES + xBytes)
  view.setUint32(16, fnv1a(out, HEADER_BYTES), true)
  return out
}

/** Decodes and validates; throws on any mismatch (magic, version, sizes, checksum, labels). */
export function decodeDataset(bytes: Uint8Array): Dataset {
  if (bytes.byteLength < HEADER_BYTES) throw new Error(`dataset: ${bytes.byteLength} bytes is shorter than the header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(0, true) !== DATASET_MAGIC) throw new Error('dataset: bad magic (not a tabswarm dataset)')
  const version = view.getUint16(4, true)
  if (version !== DATASET_VERSION) throw new Error(`dataset: unsupported version ${version}`)
  const dtypeCode = view.getUint8(6)
  if (dtypeCode > 1) throw new Error(`dataset: unknown dtype ${dtypeCode}`)
  const dtype: PixelDtype = dtypeCode === 0 ? 'uint8' : 'float32'
  const numClasses = view.getUint8(7)
  const count = view.getUint32(8, true)
  const rows = view.getUint16(12, true)
  const cols = view.getUint16(14, true)
  const n = count * rows * cols
  const xBytes = n * (dtype === 'uint8' ? 1 : 4)
  const expected = HEADER_BYTES + xBytes + count
  if (bytes.byteLength !== expected) throw new Error(`dataset: ${bytes.byteLength} bytes, header implies ${expected}`)
  const sum = fnv1a(bytes, HEADER_BYTES)
  if (sum !== view.getUint32(16, true)) throw new Error('dataset: checksum mismatch (corrupted payload)')
  let x: Uint8Array | Float32Array
  if (dtype === 'uint8') {
    x = bytes.slice(HEADER_BYTES, HEADER_BYTES + xBytes)
  } else {
    x = new Float32Array(n)
    for (let i = 0; i < n; i++) x[i] = view.getFloat32(HEADER_BYTES + 4 * i, true)
  }
  const y = bytes.slice(HEADER_BYTES + xBytes, expected)
  const d: Dataset = { count, rows, cols, numClasses, dtype, x, y }
  validateDataset(d)
  return d
}

/** Selects examples by index (a shard); the result owns fresh arrays. */
export function subsetDataset(d: Dataset, indices: ArrayLike<number>): Dataset {
  const f = featuresOf(d)
  const x = d.dtype === 'uint8' ? new Uint8Array(indices.length * f) : new Float32Array(indices.length * f)
  const y = new Uint8Array(indices.length)
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]
    if (!(i >= 0 && i < d.count)) throw new Error(`subset: index ${i} out of range [0, ${d.count})`)
    x.set(d.x.subarray(i * f, (i + 1) * f), k * f)
    y[k] = d.y[i]
  }
  return { count: indices.length, rows: d.rows, cols: d.cols, numClasses: d.numClasses, dtype: d.dtype, x, y }
}

/** Features as float32 in model units (uint8 pixels scaled to [0, 1]). */
export function featuresAsFloat32(d: Dataset): Float32Array {
  if (d.x instanceof Float32Array) return d.x
  const out = new Float32Array(d.x.length)
  for (let i = 0; i < d.x.length; i++) out[i] = d.x[i] / 255
  return out
}
