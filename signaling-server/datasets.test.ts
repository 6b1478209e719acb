import { describe, expect, it } from 'vitest'
import { HEADER_BYTES, decodeDataset, subsetDataset } from '../shared/data/format'
import { testSubsetIndices } from '../shared/data/subset'
import { partitionIndices } from '../shared/data/partition'
import { getDataset, getDatasetBinary, getShardBinary } from './datasets'

function histogram(y: Uint8Array): number[] {
  const h = new Array(10).fill(0)
  for (const l of y) h[l]++
  return h
}

describe('datasets', () => {
  it('serves real MNIST: 60000/10000 28x28 uint8 images, labels 0–9', async () => {
    const train = decodeDataset(await getDatasetBinary('mnist', 'train'))
    const test = decodeDataset(await getDatasetBinary('mnist', 'test'))
    expect([train.count, test.count, train.rows, train.cols, train.dtype]).toEqual([60000, 10000, 28, 28, 'uint8'])
    expect(histogram(train.y).every((c) => c > 5000)).toBe(true)
    expect(histogram(test.y).every((c) => c > 800)).toBe(true)
    expect(Math.max(...train.x.subarray(0, 784 * 10))).toBe(255)
    // The first MNIST training label is a 5 (well-known).
    expect(train.y[0]).toBe(5)
    expect(await getDatasetBinary('mnist', 'train')).toBe(await getDatasetBinary('mnist', 'train'))
  })

  it('serves Fashion-MNIST: deterministic 60000/10000 split, 1000 test images per class', async () => {
    const train = await getDataset('fashion-mnist', 'train')
    const test = await getDataset('fashion-mnist', 'test')
    expect([train.count, test.count]).toEqual([60000, 10000])
    expect(histogram(test.y)).toEqual(new Array(10).fill(1000))
    expect(histogram(train.y)).toEqual(new Array(10).fill(6000))
    expect(decodeDataset(await getDatasetBinary('fashion-mnist', 'test')).count).toBe(10000)
  }, 120_000)

  it('serves synthetic and shards matching the client-side partition', async () => {
    const full = await getDataset('synthetic', 'train')
    expect(full.count).toBe(8192)
    const shard = decodeDataset(await getShardBinary('synthetic', 'train', { peerIndex: 1, peerCount: 4, partition: 'label-skew:3', seed: 5 }))
    const idx = partitionIndices(full.y, 10, { kind: 'label-skew', classesPerPeer: 3 }, 1, 4, 5)
    expect(shard.count).toBe(idx.length)
    expect(Array.from(shard.y)).toEqual(Array.from(idx, (i) => full.y[i]))
    await expect(getShardBinary('synthetic', 'train', { peerIndex: 4, peerCount: 4, partition: 'iid', seed: 0 })).rejects.toThrow()
    await expect(getShardBinary('synthetic', 'train', { peerIndex: 0, peerCount: 4, partition: 'bogus', seed: 0 })).rejects.toThrow()
  })

  it('serves the test subset: N stratified examples, identical to the local pick, bytes proportional to N', async () => {
    const full = await getDataset('mnist', 'test')
    const small = await getDatasetBinary('mnist', 'test', 1000)
    const large = await getDatasetBinary('mnist', 'test', 4000)
    const d = decodeDataset(small)
    expect(d.count).toBe(1000)
    // The same examples a Node peer picks from the whole split, byte for byte.
    const local = subsetDataset(full, testSubsetIndices(full.y, full.numClasses, 1000))
    expect(Array.from(d.y)).toEqual(Array.from(local.y))
    expect(Buffer.from(d.x.buffer, d.x.byteOffset, d.x.byteLength).equals(Buffer.from(local.x.buffer, local.x.byteOffset, local.x.byteLength))).toBe(true)
    // MNIST's test classes hold 892–1135 images: each keeps its share of the 1000 (±1).
    const h = histogram(d.y)
    const fullH = histogram(full.y)
    for (let c = 0; c < 10; c++) expect(Math.abs(h[c] - fullH[c] / 10)).toBeLessThan(1)
    // A tab downloads N images' worth (784 + 1 bytes each, plus the header), not the split.
    expect(small.byteLength).toBe(HEADER_BYTES + 1000 * 785)
    expect(large.byteLength - HEADER_BYTES).toBe(4 * (small.byteLength - HEADER_BYTES))
    expect((await getDatasetBinary('mnist', 'test')).byteLength).toBe(HEADER_BYTES + 10_000 * 785)
    // Cached: a second tab of the room costs no new encoding.
    expect(await getDatasetBinary('mnist', 'test', 1000)).toBe(small)
    await expect(getDatasetBinary('mnist', 'test', 99)).rejects.toThrow(/bad subset/)
    await expect(getDatasetBinary('mnist', 'test', 10_001)).rejects.toThrow(/bad subset/)
  })

  it('rejects unknown names', async () => {
    await expect(getDatasetBinary('cifar' as never, 'train')).rejects.toThrow(/unknown dataset/)
    await expect(getDatasetBinary('mnist', 'val' as never)).rejects.toThrow(/unknown split/)
  })
})
