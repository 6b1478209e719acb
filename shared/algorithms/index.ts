import type { AlgorithmName } from '../config'
import type { AlgorithmFactory } from './types'
import { ssgd } from './ssgd'
import { dpsgd } from './dpsgd'
import { dmsgd } from './dmsgd'
import { decentlam } from './decentlam'
import { localAdamw, localSgd } from './local-sgd'
import { adPsgd } from './ad-psgd'
import { asgd } from './asgd'
import { odSgd } from './od-sgd'
import { lapSgd } from './lap-sgd'

export { ALGORITHM_DESCRIPTORS } from './descriptors'

/** Explicit registry: every config name maps to its factory. */
export const ALGORITHM_FACTORIES: Record<AlgorithmName, AlgorithmFactory> = {
  ssgd,
  dpsgd,
  dmsgd,
  decentlam,
  'local-sgd': localSgd,
  'local-adamw': localAdamw,
  'ad-psgd': adPsgd,
  asgd,
  'od-sgd': odSgd,
  'lap-sgd': lapSgd,
}
