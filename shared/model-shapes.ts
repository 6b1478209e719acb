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

/** A TensorFlow.js weights manifest entry (tf.io.WeightsManifestEntry). */
export interface TfjsWeightSpec {
  name: string
  shape: number[]
  dtype: 'float32'
}

/**
 * A self-contained TensorFlow.js model artifact: `weightsManifest` + `weightSpecs` as in a
 * model.json, and the weights inline (base64 little-endian float32), so
 * `tf.io.fromMemory({ modelTopology, weightSpecs, weightData })` loads it in one step.
 */
export interface TfjsModelArtifact {
  format: 'tabswarm-weights'
  generatedBy: string
  convertedBy: null
  modelTopology: { model: ModelName; dataset: DatasetName; input: DatasetShape; layers: { name: string; shape: number[] }[] }
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[]
  weightSpecs: TfjsWeightSpec[]
  /** base64 of the concatenated float32 weights, in weightSpecs order. */
  weightData: string
  userDefinedMetadata: Record<string, string | number>
}

/** base64 without node:* or DOM-only globals (btoa exists in browsers and Node ≥ 16). */
function toBase64(bytes: Uint8Array): string {
  let s = ''
  const CHUNK = 0x8000
  for (let i = 0; i < bytes.length; i += CHUNK) s += String.fromCharCode(...bytes.subarray(i, i + CHUNK))
  return btoa(s)
}

export interface ArtifactSource {
  model: ModelName
  dataset: DatasetName
  /** Flat little-endian float32 parameters in modelParamShapes order (a room checkpoint). */
  params: Uint8Array
  weightsPath: string
  generatedBy: string
  metadata?: Record<string, string | number>
}

/** Builds the artifact, or explains why these bytes are not this model's weights. */
export function tfjsArtifact(src: ArtifactSource): { ok: true; artifact: TfjsModelArtifact } | { ok: false; error: string } {
  const input = DATASET_SHAPES[src.dataset]
  let shapes: ParamShape[]
  try {
    shapes = modelParamShapes(src.model, input)
  } catch (err) {
    return { ok: false, error: `model: ${(err as Error).message}` }
  }
  const n = paramCountOf(shapes)
  // The bytes came from a volunteer: never label a vector of the wrong size with these shapes.
  if (n * 4 !== src.params.byteLength)
    return { ok: false, error: `checkpoint: ${src.params.byteLength} bytes do not match ${src.model} on ${src.dataset} (${n} float32)` }
  const weights = shapes.map((p) => ({ name: p.name, shape: p.shape, dtype: 'float32' as const }))
  return {
    ok: true,
    artifact: {
      format: 'tabswarm-weights',
      generatedBy: src.generatedBy,
      convertedBy: null,
      modelTopology: { model: src.model, dataset: src.dataset, input, layers: shapes },
      weightsManifest: [{ paths: [src.weightsPath], weights }],
      weightSpecs: weights,
      weightData: toBase64(src.params),
      userDefinedMetadata: src.metadata ?? {},
    },
  }
}
