import type { DatasetName } from '../../shared/config'
import { decodeDataset, type Dataset } from '../../shared/data/format'
import { getDatasetBinary } from '../../signaling-server/datasets'
import { fetchDataset, type FetchDatasetOptions } from './data-loader'

/**
 * Node-only: load a split from the server URL when given, else straight from the npm packages
 * through signaling-server/datasets.ts (simulator, tests). Kept apart from data-loader.ts so the
 * browser bundle never pulls in node:fs.
 */
export async function loadDatasetNode(
  name: DatasetName,
  split: 'train' | 'test',
  opts: FetchDatasetOptions = {},
): Promise<Dataset> {
  if (opts.baseUrl) return fetchDataset(name, split, opts)
  return decodeDataset(await getDatasetBinary(name, split))
}
