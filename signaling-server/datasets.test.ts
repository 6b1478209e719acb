import { describe, expect, it } from 'vitest'
import { decodeDataset } from '../shared/data/format'
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

  it('rejects unknown names', async () => {
    await expect(getDatasetBinary('cifar' as never, 'train')).rejects.toThrow(/unknown dataset/)
    await expect(getDatasetBinary('mnist', 'val' as never)).rejects.toThrow(/unknown split/)
  })
})
