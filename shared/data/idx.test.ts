import { describe, expect, it } from 'vitest'
import { parseIdx } from './idx'

describe('parseIdx', () => {
  it('reads dims and data of a ubyte file', () => {
    const { dims, data } = parseIdx(Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    expect(dims).toEqual([2, 3])
    expect(Array.from(data)).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('rejects a bad magic, another dtype and a size that disagrees with the header', () => {
    expect(() => parseIdx(Uint8Array.from([1, 0, 8, 1]))).toThrow(/magic/)
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]))).toThrow(/ubyte/)
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))).toThrow(/bytes/)
  })
})
