import { ALGORITHM_DESCRIPTORS, type AlgorithmKnob } from '../../../shared/algorithms/descriptors'
import type { RoomConfig, TopologyName } from '../../../shared/config'

export const TOPOLOGY_TEXT: Record<TopologyName, string> = {
  ring: 'Ring (2 neighbours each)',
  torus: 'Torus (2-D grid)',
  exponential: 'Exponential (1, 2, 4… hops)',
  'one-peer-exponential': 'One-peer exponential',
  clique: 'Clique (everyone)',
  star: 'Star (parameter server)',
}
export const DATASET_TEXT: Record<string, string> = { mnist: 'MNIST digits', 'fashion-mnist': 'Fashion-MNIST clothes', synthetic: 'Synthetic (quick)' }
export const MODEL_TEXT: Record<string, string> = { mlp: 'Small MLP', 'deep-mlp': 'Deeper MLP', cnn: 'Small CNN' }

export interface Preset {
  id: string
  title: string
  blurb: string
  apply: Partial<RoomConfig>
}
export const PRESETS: Preset[] = [
  { id: 'demo', title: 'Classroom demo', blurb: 'MNIST, small MLP, even data split. Learns in a minute or two.', apply: { dataset: 'mnist', model: 'mlp', partition: 'iid', totalSteps: 1500 } },
  { id: 'noniid', title: 'Non-IID challenge', blurb: 'Each peer sees only 2 digit classes: where averaging really matters.', apply: { dataset: 'mnist', model: 'mlp', partition: 'label-skew:2', totalSteps: 3000 } },
  { id: 'fashion', title: 'Harder task', blurb: 'Fashion-MNIST with a small CNN. Slower, more impressive curves.', apply: { dataset: 'fashion-mnist', model: 'cnn', partition: 'iid', totalSteps: 4000 } },
  // What sent the fewest bytes per peer to target in the WAN race (docs/reproductions.md
  // "Slow-network preset"); the rest of the recipe is the algorithm's defaults.
  {
    id: 'slow-network', title: 'Slow network',
    blurb: 'A school uplink or a WAN: Local SGD + QSR averages every few steps with 8-bit messages. Fewest bytes to target in our WAN race.',
    apply: { algorithm: 'local-sgd', topology: 'clique', compression: 'int8', dataset: 'mnist', model: 'mlp', partition: 'iid', totalSteps: 3000 },
  },
]

/** The algorithm-specific fields are shown for the algorithms that read them. */
export function readsKnob(config: RoomConfig, knob: AlgorithmKnob): boolean {
  return ALGORITHM_DESCRIPTORS[config.algorithm].knobs.includes(knob)
}

export type QsrSync = Extract<RoomConfig['sync'], { kind: 'qsr' }>
