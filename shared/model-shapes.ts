import type { DatasetName, ModelName } from './config'

/**
 * Parameter names and shapes of every model, without tfjs: the server needs them to turn a
 * checkpoint's flat float32 vector into a TensorFlow.js weights manifest. The layout must equal
 * client/runtime/models.ts `buildModel(...).params` (same order, names, shapes); a unit test
 * (shared/model-shapes.test.ts) compares the two for every model and dataset.
 */

export interface ParamShape {
  name: string
  shape: number[]
}

export interface DatasetShape {
  rows: number
  cols: number
  numClasses: number
}

/** What the server serves per dataset (signaling-server/datasets.ts; synthetic = makeSynthetic defaults). */
export const DATASET_SHAPES: Record<DatasetName, DatasetShape> = {
  mnist: { rows: 28, cols: 28, numClasses: 10 },
  'fashion-mnist': { rows: 28, cols: 28, numClasses: 10 },
  synthetic: { rows: 1, cols: 32, numClasses: 10 },
}

function dense(name: string, inp: number, out: number): ParamShape[] {
  return [{ name: `${name}/w`, shape: [inp, out] }, { name: `${name}/b`, shape: [out] }]
}

function mlp(features: number, hidden: number[], classes: number): ParamShape[] {
  const out: ParamShape[] = []
  let inp = features
  hidden.forEach((h, i) => {
    out.push(...dense(`dense${i}`, inp, h))
    inp = h
  })
  out.push(...dense('out', inp, classes))
  return out
}

/** Throws for combinations buildModel rejects (cnn on non-28x28 input). */
export function modelParamShapes(model: ModelName, input: DatasetShape): ParamShape[] {
  const features = input.rows * input.cols
  const image = input.rows > 1
  if (model === 'mlp') return mlp(features, [128], input.numClasses)
  if (model === 'deep-mlp') return mlp(features, image ? [256, 256, 256, 256] : [128, 128, 128, 128, 128, 128], input.numClasses)
  if (input.rows !== 28 || input.cols !== 28) throw new Error(`cnn needs 28x28 images, got ${input.rows}x${input.cols}`)
  return [
    { name: 'conv0/w', shape: [3, 3, 1, 8] },
    { name: 'conv0/b', shape: [8] },
    { name: 'conv1/w', shape: [3, 3, 8, 16] },
    { name: 'conv1/b', shape: [16] },
    ...dense('dense0', 7 * 7 * 16, 64),
    ...dense('out', 64, input.numClasses),
  ]
}

export const paramCountOf = (shapes: ParamShape[]): number =>
  shapes.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0)

/**
 * The layout's name, equal to client/runtime/models.ts `schemaHashOf` (FNV-1a over
 * `name:shape` pairs): the server checks an uploaded checkpoint against it without tfjs.
 */
export function schemaHashOf(model: string, shapes: readonly ParamShape[]): string {
  const s = shapes.map((p) => `${p.name}:${p.shape.join('x')}`).join(';')
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return `${model}-${(h >>> 0).toString(16).padStart(8, '0')}`
}

/**
 * Multiply-accumulates of one example's forward pass, read off the layout: a dense layer's
 * in × out, a 3×3 'same' convolution's output pixels × its filter size (the cnn pools 2×2 after
 * each convolution, so the side halves). A size estimate for choosing where a model trains, not
 * a performance model.
 */
export function forwardMacsPerExample(model: ModelName, input: DatasetShape): number {
  let side = input.rows
  let macs = 0
  for (const p of modelParamShapes(model, input)) {
    const size = p.shape.reduce((a, b) => a * b, 1)
    if (p.shape.length === 4) (macs += side * side * size), (side /= 2)
    else if (p.shape.length === 2) macs += size
  }
  return macs
}

/** Parameter count and schema hash of `model` on `dataset`, or why that pair does not exist. */
export function modelLayout(model: ModelName, dataset: DatasetName): { ok: true; shapes: ParamShape[]; paramCount: number; schemaHash: string } | { ok: false; error: string } {
  try {
    const shapes = modelParamShapes(model, DATASET_SHAPES[dataset])
    return { ok: true, shapes, paramCount: paramCountOf(shapes), schemaHash: schemaHashOf(model, shapes) }
  } catch (err) {
    return { ok: false, error: `model: ${(err as Error).message}` }
  }
}

/** A TensorFlow.js weights manifest entry (tf.io.WeightsManifestEntry). */
export interface TfjsWeightSpec {
  name: string
  shape: number[]
  dtype: 'float32'
}

/** One layer of a Keras (tfjs-layers) model topology, snake_case as in a saved model.json. */
export interface KerasLayerJson {
  class_name: 'Dense' | 'Conv2D' | 'MaxPooling2D' | 'Flatten' | 'Reshape'
  config: Record<string, unknown>
}

export interface KerasModelTopology {
  class_name: 'Sequential'
  config: { name: string; layers: KerasLayerJson[] }
  keras_version: string
  backend: 'tensor_flow.js'
}

/**
 * A TensorFlow.js layers model (the model.json that `tf.loadLayersModel` reads): a Keras
 * Sequential topology equal to client/runtime/models.ts's forward pass, and a weights manifest
 * whose names are the Keras layers' own (`dense0/kernel`, `dense0/bias`, …). The single-file
 * download also carries `weightSpecs` and `weightData` (base64 little-endian float32), so
 * `tf.loadLayersModel(tf.io.fromMemory({ modelTopology, weightSpecs, weightData }))` loads it
 * without a second file.
 */
export interface TfjsModelArtifact {
  format: 'layers-model'
  generatedBy: string
  convertedBy: null
  modelTopology: KerasModelTopology
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[]
  weightSpecs?: TfjsWeightSpec[]
  weightData?: string
  userDefinedMetadata: Record<string, string | number>
}

/** base64 without node:* or DOM-only globals (btoa exists in browsers and Node ≥ 16). */
function toBase64(bytes: Uint8Array): string {
  let s = ''
  const CHUNK = 0x8000
  for (let i = 0; i < bytes.length; i += CHUNK) s += String.fromCharCode(...bytes.subarray(i, i + CHUNK))
  return btoa(s)
}

/** Keras weight names: models.ts calls a layer's parameters `<layer>/w` and `<layer>/b`. */
function kerasWeightName(name: string): string {
  return name.replace(/\/w$/, '/kernel').replace(/\/b$/, '/bias')
}

const layerBase = { trainable: true, dtype: 'float32' }

function denseLayer(name: string, units: number, activation: 'relu' | 'linear', inputFeatures?: number): KerasLayerJson {
  return {
    class_name: 'Dense',
    config: { ...layerBase, name, units, activation, use_bias: true, ...(inputFeatures !== undefined ? { batch_input_shape: [null, inputFeatures] } : {}) },
  }
}

/**
 * The layers that compute what models.ts computes. Inputs are flattened examples (rows*cols
 * values, uint8 pixels divided by 255), outputs are logits (no softmax, as in training). The CNN's
 * im2col convolution uses tf.conv2d's filter layout and 'same' padding, its reshape+max pooling
 * is a 2x2/2 max pool, and Flatten is row-major over [h, w, c] like models.ts's tf.reshape.
 */
function kerasLayers(model: ModelName, input: DatasetShape): KerasLayerJson[] {
  const features = input.rows * input.cols
  if (model === 'mlp' || model === 'deep-mlp') {
    const shapes = modelParamShapes(model, input)
    const hidden = shapes.filter((p) => /^dense\d+\/w$/.test(p.name)).map((p) => p.shape[1])
    return [
      ...hidden.map((units, i) => denseLayer(`dense${i}`, units, 'relu', i === 0 ? features : undefined)),
      denseLayer('out', input.numClasses, 'linear', hidden.length === 0 ? features : undefined),
    ]
  }
  const conv = (name: string, filters: number): KerasLayerJson => ({
    class_name: 'Conv2D',
    config: { ...layerBase, name, filters, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'relu', use_bias: true },
  })
  const pool = (name: string): KerasLayerJson => ({
    class_name: 'MaxPooling2D',
    config: { ...layerBase, name, pool_size: [2, 2], strides: [2, 2], padding: 'valid', data_format: 'channels_last' },
  })
  return [
    { class_name: 'Reshape', config: { ...layerBase, name: 'image', target_shape: [input.rows, input.cols, 1], batch_input_shape: [null, features] } },
    conv('conv0', 8), pool('pool0'), conv('conv1', 16), pool('pool1'),
    { class_name: 'Flatten', config: { ...layerBase, name: 'flatten', data_format: 'channels_last' } },
    denseLayer('dense0', 64, 'relu'),
    denseLayer('out', input.numClasses, 'linear'),
  ]
}

export interface ArtifactSource {
  model: ModelName
  dataset: DatasetName
  /** Flat little-endian float32 parameters in modelParamShapes order (a room checkpoint). */
  params: Uint8Array
  /** Where the weights file lies, relative to the model.json's URL (tfjs resolves it so). */
  weightsPath: string
  generatedBy: string
  /** Put weightSpecs + weightData (base64) in the JSON too: one self-contained file. */
  embedWeights?: boolean
  metadata?: Record<string, string | number>
}

/** Builds the artifact, or explains why these bytes are not this model's weights. */
export function tfjsArtifact(src: ArtifactSource): { ok: true; artifact: TfjsModelArtifact } | { ok: false; error: string } {
  const layout = modelLayout(src.model, src.dataset)
  if (!layout.ok) return layout
  const input = DATASET_SHAPES[src.dataset]
  // The bytes came from a volunteer: never label a vector of the wrong size with these shapes.
  if (layout.paramCount * 4 !== src.params.byteLength)
    return { ok: false, error: `checkpoint: ${src.params.byteLength} bytes do not match ${src.model} on ${src.dataset} (${layout.paramCount} float32)` }
  const weights = layout.shapes.map((p) => ({ name: kerasWeightName(p.name), shape: p.shape, dtype: 'float32' as const }))
  const artifact: TfjsModelArtifact = {
    format: 'layers-model',
    generatedBy: src.generatedBy,
    convertedBy: null,
    modelTopology: {
      class_name: 'Sequential',
      config: { name: `tabswarm_${src.model.replace(/-/g, '_')}_${src.dataset.replace(/-/g, '_')}`, layers: kerasLayers(src.model, input) },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
    },
    weightsManifest: [{ paths: [src.weightsPath], weights }],
    userDefinedMetadata: {
      model: src.model, dataset: src.dataset, inputFeatures: input.rows * input.cols, inputScale: '1/255', output: 'logits',
      ...src.metadata,
    },
  }
  if (src.embedWeights) {
    artifact.weightSpecs = weights
    artifact.weightData = toBase64(src.params)
  }
  return { ok: true, artifact }
}
