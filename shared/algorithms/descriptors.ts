import type { RoomConfig, TopologyName } from '../config'
import {
  AD_PSGD_KIND, allReduceKinds, gossipKind, kindMatcher, LEAVE_KIND, OD_SGD_STATE_KIND, PS_KIND, psKind, robustGatherKinds, SSGD_COLLECTIVE,
  STATE_KIND,
} from './message-kinds'

/**
 * What each algorithm is, as data: its family, the graphs it runs on and connects, the config
 * fields it reads and its default recipe, the messages it sends, and the roles and runtime it
 * needs. The config check and defaults (shared/config.ts), the mesh's links and codecs
 * (client/session/platform.ts), the server's PS election (signaling-server/rooms.ts), the session
 * and the host UI all read this table. Types only from ../config (which imports this module), and
 * no algorithm code: the server and the UI load it on their own.
 */

export const ALGORITHMS = [
  'ssgd', 'dpsgd', 'dmsgd', 'decentlam', 'local-sgd', 'local-adamw', 'lap-sgd', 'asgd', 'od-sgd', 'ad-psgd',
] as const
export type AlgorithmName = (typeof ALGORITHMS)[number]

/**
 * - all-reduce: the whole roster averages with the ring all-reduce (common.ts).
 * - gossip: one exchange with the topology neighbours per step, mixing weights from the roster.
 * - parameter-server: workers push to the peer the room elects as PS (ps-common.ts).
 * - pairwise-gossip: random pairs of neighbours average, nobody waits for a round.
 */
export type AlgorithmFamily = 'all-reduce' | 'gossip' | 'parameter-server' | 'pairwise-gossip'

/**
 * Config fields that only some algorithms read (every algorithm reads lr, schedule, batchSize,
 * totalSteps, weightDecay, the deadlines, compression and seed). Their ranges and shapes are
 * roomConfigSchema's; a descriptor only says who reads them.
 */
export const ALGORITHM_KNOBS = [
  'momentum', 'order', 'lrScaling', 'resyncEvery', 'sync', 'averageOptimizerState', 'adam', 'updaters',
  'localLr', 'localOptimizer', 'dcLambda', 'warmStartSteps',
] as const satisfies readonly (keyof RoomConfig)[]
export type AlgorithmKnob = (typeof ALGORITHM_KNOBS)[number]

export interface AlgorithmInfo {
  readonly title: string
  /** One plain-language line for the host UI. */
  readonly blurb: string
  /**
   * When to pick it, one sentence on the host page's card: from the race on the real mesh
   * (docs/reproductions.md) where it covered the algorithm, else from docs/algorithms.md.
   */
  readonly pick: string
  readonly paper: string
}

export interface AlgorithmDescriptor extends AlgorithmInfo {
  readonly family: AlgorithmFamily
  /**
   * The graph the mesh keeps links on. 'ring' for the all-reduce family: its group is a clique,
   * but the ring all-reduce only ever talks to the roster neighbours on either side. 'room': the
   * room's topology.
   */
  readonly linkTopology: 'ring' | 'room'
  /** Room topologies it accepts. */
  readonly topologies: readonly TopologyName[]
  readonly defaultTopology: TopologyName
  readonly knobs: readonly AlgorithmKnob[]
  /** Its recipe: overrides of BASE_DEFAULTS (shared/config.ts), validated like any input. */
  readonly defaults: Partial<Omit<RoomConfig, 'algorithm' | 'topology'>>
  readonly messageKinds: {
    /** Patterns of every kind it sends (message-kinds.ts; '<…>' is a number). */
    readonly sends: readonly string[]
    /**
     * Kinds whose payloads are increments, which lossy wire codecs send with error feedback:
     * gradients pushed to a parameter server, SSGD's reduce-scatter partial sums of gradients (the
     * same hop carries the same chunk every step, so the residual is added back where it
     * belongs). Parameters and reduced results are not increments.
     */
    readonly increments: (kind: string) => boolean
  }
  /** Trains with U Hogwild updaters per tab over shared memory (AlgorithmContext.hogwild). */
  readonly hogwild: boolean
  /** Roles the signaling server assigns: `ps`, the room elects a parameter server. */
  readonly roles: { readonly ps: boolean }
}

const GOSSIP_TOPOLOGIES: readonly TopologyName[] = ['ring', 'torus', 'exponential', 'one-peer-exponential', 'clique']

const FAMILY: Record<AlgorithmFamily, Pick<AlgorithmDescriptor, 'linkTopology' | 'topologies' | 'roles'>> = {
  'all-reduce': { linkTopology: 'ring', topologies: ['clique'], roles: { ps: false } },
  gossip: { linkTopology: 'room', topologies: GOSSIP_TOPOLOGIES, roles: { ps: false } },
  'parameter-server': { linkTopology: 'room', topologies: ['star'], roles: { ps: true } },
  // AD-PSGD's pairwise averaging is symmetric: both ends of an edge must be able to start it.
  'pairwise-gossip': { linkTopology: 'room', topologies: ['ring', 'torus', 'clique'], roles: { ps: false } },
}

type Own = Omit<AlgorithmDescriptor, 'family' | keyof (typeof FAMILY)[AlgorithmFamily] | 'hogwild'> & { hogwild?: boolean }

function entry(family: AlgorithmFamily, own: Own): AlgorithmDescriptor {
  return { family, ...FAMILY[family], hogwild: false, ...own }
}

const none = (): boolean => false
const exactly = (k: string) => (kind: string): boolean => kind === k
const STATE = [STATE_KIND.request, STATE_KIND.response]
const LEAVE = [LEAVE_KIND.model, LEAVE_KIND.ack]

const gossipKinds = (name: AlgorithmName) => ({ sends: [gossipKind(name), ...STATE, ...LEAVE], increments: none })
// robustGatherKinds: the all-gather that replaces the ring with `robust: 'on'` (common.ts allGatherWithRetry).
const averagingKinds = (name: AlgorithmName) => ({ sends: [...allReduceKinds(name), robustGatherKinds(name), ...STATE, ...LEAVE], increments: none })
const psKinds = (name: AlgorithmName, ...more: string[]) => ({
  sends: [...(Object.keys(PS_KIND) as (keyof typeof PS_KIND)[]).map((k) => psKind(name, k)), ...more],
  increments: exactly(psKind(name, 'push')),
})

export const ALGORITHM_DESCRIPTORS: Readonly<Record<AlgorithmName, AlgorithmDescriptor>> = {
  ssgd: entry('all-reduce', {
    defaultTopology: 'clique',
    knobs: ['momentum', 'lrScaling', 'resyncEvery'],
    defaults: { lr: 0.1, schedule: { kind: 'cosine', warmupSteps: 100, minLr: 0 } },
    messageKinds: {
      sends: [
        ...allReduceKinds(SSGD_COLLECTIVE.gradient), ...allReduceKinds(SSGD_COLLECTIVE.resync),
        robustGatherKinds(SSGD_COLLECTIVE.gradient), robustGatherKinds(SSGD_COLLECTIVE.resync), ...STATE,
      ],
      increments: kindMatcher(allReduceKinds(SSGD_COLLECTIVE.gradient)[0]),
    },
    title: 'Synchronous SGD', blurb: 'Everyone averages gradients every step: the classic data-parallel baseline.', pick: 'For a fast, even LAN and a reference curve: every step waits for the slowest peer, and on a WAN it took about twice as long as Local SGD to 95 %.', paper: 'Goyal et al. 2017, arXiv 1706.02677',
  }),
  dpsgd: entry('gossip', {
    defaultTopology: 'ring',
    knobs: ['momentum', 'order'],
    defaults: {},
    messageKinds: gossipKinds('dpsgd'),
    title: 'Decentralized SGD (D-PSGD)', blurb: 'Each peer averages with its ring neighbours only — no global barrier.', pick: 'For fast links and a rough model quickly: each step talks to two neighbours only, but it sent the most bytes of all to 95 % on a WAN.', paper: 'Lian et al., NeurIPS 2017; Zhang et al., arXiv 2112.01433',
  }),
  dmsgd: entry('gossip', {
    defaultTopology: 'ring',
    knobs: ['momentum'],
    defaults: {},
    messageKinds: gossipKinds('dmsgd'),
    title: 'Decentralized momentum SGD', blurb: 'Local heavy-ball momentum plus neighbour averaging (the DecentLaM baseline).', pick: 'As the momentum gossip baseline on evenly split data; with skewed classes per peer pick DecentLaM.', paper: 'Yuan et al., ICCV 2021 (baseline)',
  }),
  // On the directed exponential graphs DecentLaM mixes with (W + Wᵀ)/2 (decentlam.ts).
  decentlam: entry('gossip', {
    defaultTopology: 'exponential',
    knobs: ['momentum'],
    defaults: {},
    messageKinds: gossipKinds('decentlam'),
    title: 'DecentLaM', blurb: 'Decentralized momentum that removes the bias momentum adds on non-iid data.', pick: 'For gossip when each peer holds only some classes (non-iid data) and you want momentum.', paper: 'Yuan et al., ICCV 2021, arXiv 2104.11981',
  }),
  'local-sgd': entry('all-reduce', {
    defaultTopology: 'clique',
    knobs: ['momentum', 'sync', 'averageOptimizerState'],
    defaults: { lr: 0.1, sync: { kind: 'qsr', hBase: 2, alpha: 0.2 }, schedule: { kind: 'cosine', warmupSteps: 150, minLr: 0 } },
    messageKinds: averagingKinds('local-sgd'),
    title: 'Local SGD + QSR', blurb: 'Train alone for H steps, then average; H grows as the learning rate decays.', pick: 'For slow or metered networks: it averages only every H steps; with int8 messages it reached 95 % on a WAN with a tenth of the bytes of averaging every step.', paper: 'Gu et al., ICLR 2024, arXiv 2310.14423',
  }),
  'local-adamw': entry('all-reduce', {
    defaultTopology: 'clique',
    knobs: ['adam', 'sync', 'averageOptimizerState'],
    defaults: {
      lr: 0.002, weightDecay: 0.05, momentum: 0,
      sync: { kind: 'qsr', hBase: 4, alpha: 0.0004 }, schedule: { kind: 'cosine', warmupSteps: 150, minLr: 1e-6 },
    },
    messageKinds: averagingKinds('local-adamw'),
    title: 'Local AdamW + QSR', blurb: 'Local SGD with AdamW as the inner optimizer, synchronised by the quadratic rule.', pick: 'Like Local SGD, for models that train better with Adam than with momentum SGD.', paper: 'Gu et al., ICLR 2024, arXiv 2310.14423',
  }),
  'lap-sgd': entry('all-reduce', {
    defaultTopology: 'clique',
    knobs: ['sync', 'updaters'],
    defaults: { lr: 0.05, momentum: 0, batchSize: 16, updaters: 2, sync: { kind: 'constant', h: 8 } },
    messageKinds: averagingKinds('lap-sgd'),
    hogwild: true,
    title: 'Asynchronous local SGD', blurb: 'Several workers per tab update one model Hogwild-style while averaging runs in the background.', pick: 'When tabs have spare cores: several updaters keep training while the averaging runs in the background.', paper: 'Chatterjee et al., ICLR 2021 submission',
  }),
  asgd: entry('parameter-server', {
    defaultTopology: 'star',
    knobs: ['momentum'],
    defaults: { lr: 0.05, momentum: 0.9 },
    messageKinds: psKinds('asgd'),
    title: 'Asynchronous SGD', blurb: 'A parameter server applies each gradient as soon as it arrives.', pick: 'When one well-connected machine can be the server: among the first to 95 % in our WAN race, but the server sends three times what a worker does.', paper: 'Baseline of Xu et al., arXiv 2005.06728',
  }),
  'od-sgd': entry('parameter-server', {
    defaultTopology: 'star',
    knobs: ['momentum', 'localLr', 'localOptimizer', 'dcLambda', 'warmStartSteps'],
    defaults: { lr: 0.05, momentum: 0.9, localLr: 0.25, warmStartSteps: 20 },
    messageKinds: psKinds('od-sgd', OD_SGD_STATE_KIND),
    title: 'One-step-delay SGD', blurb: 'Workers keep computing while the server step is in flight, compensating locally.', pick: 'When workers would idle on a long round trip to the server; in our WAN race plain ASGD still reached 95 % sooner.', paper: 'Xu et al., arXiv 2005.06728',
  }),
  'ad-psgd': entry('pairwise-gossip', {
    defaultTopology: 'ring',
    knobs: ['momentum'],
    defaults: { lr: 0.05, momentum: 0 },
    messageKinds: { sends: [...Object.values(AD_PSGD_KIND), ...LEAVE], increments: none },
    title: 'Asynchronous decentralized SGD', blurb: 'Random pairs of peers average whenever they are ready — nobody waits for anyone.', pick: 'When some peers are much slower (phones, busy laptops): with one peer 4× slower it reached 90 % in half the time of D-PSGD.', paper: 'Lian et al., ICML 2018',
  }),
}

/** The algorithms whose descriptor satisfies `pred`, in ALGORITHMS order. */
export function algorithmsWhere(pred: (d: AlgorithmDescriptor) => boolean): AlgorithmName[] {
  return ALGORITHMS.filter((a) => pred(ALGORITHM_DESCRIPTORS[a]))
}

/**
 * The graph the mesh connects for a room (see AlgorithmDescriptor.linkTopology). With `robust: 'on'`
 * the all-reduce family all-gathers instead of using the ring (common.ts allGatherWithRetry): every
 * member talks to every other, so the room's clique.
 */
export function linkTopology(config: Pick<RoomConfig, 'algorithm' | 'topology'> & Partial<Pick<RoomConfig, 'robust'>>): TopologyName {
  return ALGORITHM_DESCRIPTORS[config.algorithm].linkTopology === 'ring' && config.robust !== 'on' ? 'ring' : config.topology
}

const quoted = (xs: readonly string[]) => xs.map((x) => `'${x}'`)
const orList = (xs: readonly string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}` : xs.join(''))

/** The config error for a topology `algorithm` does not accept. */
export function topologyRule(algorithm: AlgorithmName): string {
  const d = ALGORITHM_DESCRIPTORS[algorithm]
  const allowed = orList(quoted(d.topologies))
  switch (d.family) {
    case 'all-reduce':
      return `${algorithm} averages over the whole group: use topology ${allowed}`
    case 'parameter-server':
      return `${algorithm} needs topology ${allowed} (parameter server)`
    case 'gossip': {
      const ps = algorithmsWhere((x) => x.family === 'parameter-server')
      return `${algorithm} is decentralized: ${orList(quoted(FAMILY['parameter-server'].topologies))} is for ${ps.join('/')}`
    }
    case 'pairwise-gossip':
      return `${algorithm} gossips over an undirected graph: use ${allowed}`
  }
}
