import * as tf from '@tensorflow/tfjs'
import type { ModelName } from '../../shared/config'
import { Rng } from '../../shared/data/rng'
import { schemaHashOf } from '../../shared/model-shapes'

/**
 * Models as plain ordered lists of parameter tensors (no tf.layers), so the flat parameter
 * vector that crosses the Compute seam has one well-defined layout: parameters in `params`
 * order, each flattened row-major. `schemaHash` names that layout; peers with another hash
 * cannot average with us.
 */
export interface ParamSpec {
  name: string
  shape: number[]
  /** He-normal fan-in for weights; 0 means zeros (biases). */
  fanIn: number
  /** Variance multiplier: 2 for ReLU layers (He), 1 for the linear output layer (LeCun). */
  gain: number
}

export interface ModelSpec {
  name: ModelName
  /** Input features per example (rows*cols). */
  features: number
  numClasses: number
  params: ParamSpec[]
  paramCount: number
  schemaHash: string
  /** Logits [batch, numClasses] for x [batch, features]; call inside tf.tidy. */
  forward(params: tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D
}

export interface InputShape {
  rows: number
  cols: number
  numClasses: number
}

function dense(name: string, inp: number, out: number, gain: number): ParamSpec[] {
  return [
    { name: `${name}/w`, shape: [inp, out], fanIn: inp, gain },
    { name: `${name}/b`, shape: [out], fanIn: 0, gain: 0 },
  ]
}

function mlpSpec(features: number, hidden: number[], classes: number): { params: ParamSpec[]; forward: ModelSpec['forward'] } {
  const params: ParamSpec[] = []
  let inp = features
  hidden.forEach((h, i) => {
    params.push(...dense(`dense${i}`, inp, h, 2))
    inp = h
  })
  params.push(...dense(`out`, inp, classes, 1))
  const forward = (p: tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D => {
    let a: tf.Tensor2D = x
    for (let i = 0; i < hidden.length; i++) a = tf.relu(tf.add(tf.matMul(a, p[2 * i] as tf.Tensor2D), p[2 * i + 1])) as tf.Tensor2D
    const k = 2 * hidden.length
    return tf.add(tf.matMul(a, p[k] as tf.Tensor2D), p[k + 1]) as tf.Tensor2D
  }
  return { params, forward }
}

/** Small conv net for 28x28x1: conv3x3x8-pool-conv3x3x16-pool-dense64-dense10 (≈52k params). */
function cnnSpec(rows: number, cols: number, classes: number): { params: ParamSpec[]; forward: ModelSpec['forward'] } {
  if (rows !== 28 || cols !== 28) throw new Error(`cnn needs 28x28 images, got ${rows}x${cols} (use mlp for synthetic)`)
  const flat = 7 * 7 * 16
  const params: ParamSpec[] = [
    { name: 'conv0/w', shape: [3, 3, 1, 8], fanIn: 9, gain: 2 },
    { name: 'conv0/b', shape: [8], fanIn: 0, gain: 0 },
    { name: 'conv1/w', shape: [3, 3, 8, 16], fanIn: 72, gain: 2 },
    { name: 'conv1/b', shape: [16], fanIn: 0, gain: 0 },
    ...dense('dense0', flat, 64, 2),
    ...dense('out', 64, classes, 1),
  ]
  const forward = (p: tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D => {
    const img = tf.reshape(x, [-1, rows, cols, 1]) as tf.Tensor4D
    let a = pool2(tf.relu(conv3x3(img, p[0] as tf.Tensor4D, p[1])) as tf.Tensor4D)
    a = pool2(tf.relu(conv3x3(a, p[2] as tf.Tensor4D, p[3])) as tf.Tensor4D)
    const h = tf.relu(tf.add(tf.matMul(tf.reshape(a, [-1, flat]) as tf.Tensor2D, p[4] as tf.Tensor2D), p[5])) as tf.Tensor2D
    return tf.add(tf.matMul(h, p[6] as tf.Tensor2D), p[7]) as tf.Tensor2D
  }
  return { params, forward }
}

/**
 * 3x3 'same' convolution whose gradient is built from forward convolutions only.
 * tfjs-backend-wasm has no Conv2DBackpropFilter kernel, so tf.conv2d's own gradient cannot run
 * there; the im2col form (9 slices + concat + matMul) could, but wasm runs slice and concat as
 * JavaScript loops: in a cnn step's CPU profile they were ~30 % of the compute thread and the
 * part that slowed most beside other busy threads (memory-bound). Here the forward pass, dx and
 * dW are all Conv2D (XNNPACK on wasm):
 *   dx = conv2d(dy, w rotated 180° with in/out swapped, 'same')
 *   dW[ky,kx,ci,co] = Σ_{n,y,x} pad(x)[n,y+ky,x+kx,ci]·dy[n,y,x,co]
 *      = conv2d(pad(x) as [ci, H+2, W+2, n], dy as filter [H, W, n, co], 'valid') → [ci,3,3,co]
 * Filter layout is tf.conv2d's [3, 3, in, out], so weights are unchanged.
 */
const conv3x3Core = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc]
  save([x, w])
  return {
    value: tf.conv2d(x, w, 1, 'same'),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D]
      const d = dy as tf.Tensor4D
      const wFlip = tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D
      const dx = tf.conv2d(d, wFlip, 1, 'same')
      const xT = tf.transpose(tf.pad(xs, [[0, 0], [1, 1], [1, 1], [0, 0]]), [3, 1, 2, 0]) as tf.Tensor4D
      const dyT = tf.transpose(d, [1, 2, 0, 3]) as tf.Tensor4D
      const dw = tf.transpose(tf.conv2d(xT, dyT, 1, 'valid'), [1, 2, 0, 3])
      return [dx, dw]
    },
  }
})

function conv3x3(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor): tf.Tensor4D {
  return tf.add(conv3x3Core(x, w), b) as tf.Tensor4D
}

/**
 * 2x2 max pooling, stride 2. tf.maxPool (MaxPool + MaxPoolGrad exist on wasm, cpu, webgl and
 * webgpu in tfjs 4.22). The earlier reshape + max form was differentiable everywhere too, but
 * its gradient is a broadcast Equal that wasm runs element by element: 37 of a 54 ms cnn step.
 */
function pool2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.maxPool(x, 2, 2, 'valid')
}

/**
 * The layout's name: shared/model-shapes.ts computes it (the server checks uploaded checkpoints
 * with it, without tfjs); one function, so a tab's hash and the server's cannot differ.
 */
export { schemaHashOf }

/**
 * mlp: features-128-10. deep-mlp: 784-[256]x4-10 on images, 32-[128]x6-10 on synthetic
 * (the deep toy of the reference sims). cnn: 28x28 images only.
 */
export function buildModel(name: ModelName, input: InputShape): ModelSpec {
  const features = input.rows * input.cols
  const image = input.rows > 1
  const classes = input.numClasses
  const built =
    name === 'mlp'
      ? mlpSpec(features, [128], classes)
      : name === 'deep-mlp'
        ? mlpSpec(features, image ? [256, 256, 256, 256] : [128, 128, 128, 128, 128, 128], classes)
        : cnnSpec(input.rows, input.cols, classes)
  const paramCount = built.params.reduce((s, p) => s + sizeOf(p.shape), 0)
  return { name, features, numClasses: classes, paramCount, schemaHash: schemaHashOf(name, built.params), ...built }
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/** Seeded He-normal init on the host: every peer with the same seed starts from the same x. */
export function initParams(spec: ModelSpec, seed: number): Float32Array {
  const rng = new Rng(seed ^ 0x1a17)
  const out = new Float32Array(spec.paramCount)
  let at = 0
  for (const p of spec.params) {
    const n = sizeOf(p.shape)
    if (p.fanIn > 0) {
      const std = Math.sqrt(p.gain / p.fanIn)
      for (let i = 0; i < n; i++) out[at + i] = rng.normal() * std
    }
    at += n
  }
  return out
}

/** Splits a flat vector into tensors of the spec's shapes (caller owns/disposes; use in tidy). */
export function unflatten(spec: ModelSpec, flat: Float32Array): tf.Tensor[] {
  if (flat.length !== spec.paramCount) throw new Error(`unflatten: ${flat.length} values, model has ${spec.paramCount}`)
  const out: tf.Tensor[] = []
  let at = 0
  for (const p of spec.params) {
    const n = sizeOf(p.shape)
    out.push(tf.tensor(flat.subarray(at, at + n), p.shape, 'float32'))
    at += n
  }
  return out
}

/** One 1-D tensor with every tensor flattened in order (use inside tf.tidy). */
export function flattenTensors(ts: tf.Tensor[]): tf.Tensor1D {
  return tf.concat(ts.map((t) => tf.reshape(t, [-1]))) as tf.Tensor1D
}
