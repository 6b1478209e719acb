/**
 * The IDX container MNIST ships in. Pure byte parsing, so it stays isomorphic; only reading the
 * files off disk is Node-only (shared/data/node/datasets.ts).
 */

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
