import type { DatasetName } from '../../shared/config'
import type { Dataset } from '../../shared/data/format'
import { loadDataset } from '../../shared/data/node/datasets'
import { fetchDataset, testSubsetOf, type FetchDatasetOptions } from './data-loader'

/**
 * Node-only: load a split from the server URL when given, else straight from the npm packages
 * through shared/data/node/datasets.ts (simulator, tests). Kept apart from data-loader.ts so the
 * browser bundle never pulls in node:fs.
 */
export async function loadDatasetNode(
  name: DatasetName,
  split: 'train' | 'test',
  opts: FetchDatasetOptions = {},
): Promise<Dataset> {
  if (opts.baseUrl) return fetchDataset(name, split, opts)
  const d = await loadDataset(name, split)
  // The same examples the server would serve for `?subset=N`; subsetDataset copies.
  if (opts.testSubset !== undefined && d.count > opts.testSubset) return testSubsetOf(d, opts.testSubset)
  // The decoded split is cached and shared (with an in-process server too): hand out arrays the
  // caller owns, as a fetched dataset would be.
  return { ...d, x: d.x.slice(), y: d.y.slice() }
}
