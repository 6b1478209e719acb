import type { TopologyName } from './config'
import type { PeerId } from './transport'

/**
 * Communication graphs and mixing weights (docs/algorithms.md "Topologies and mixing weights"). Everything is a pure function of
 * the roster order (Membership.peers) and, for the time-varying graph, the step — so every peer
 * computes the same graph without any agreement protocol.
 */

export interface NeighborSets {
  /** Peers this node sends its vector to this step. */
  readonly sendTo: readonly PeerId[]
  /** Peers this node expects a vector from this step (equal to sendTo for undirected graphs). */
  readonly receiveFrom: readonly PeerId[]
  readonly directed: boolean
}

export interface MixingWeights {
  readonly self: number
  /** Weight on each in-neighbour's vector (receiveFrom). self + Σ in = 1. */
  readonly in: ReadonlyMap<PeerId, number>
}

/** Glare avoidance: of two peers, the lexicographically smaller one initiates. */
export function isInitiator(a: PeerId, b: PeerId): boolean {
  return a < b
}

/** ⌈log₂ n⌉ (τ of the exponential graphs); 0 for n ≤ 1. */
export function log2Ceil(n: number): number {
  let t = 0
  while (1 << t < n) t++
  return t
}

/** Grid shape r×c for the torus: r the largest divisor of n not above √n (r = 1 degenerates to a ring). */
export function torusShape(n: number): [number, number] {
  let r = Math.max(1, Math.floor(Math.sqrt(n)))
  while (r > 1 && n % r !== 0) r--
  return [r, n / r]
}

const mod = (a: number, n: number) => ((a % n) + n) % n

/** Undirected adjacency (indices) of node i; self loops and duplicates removed. */
function undirectedAdj(topology: TopologyName, n: number, i: number, psIndex: number): number[] {
  const out = new Set<number>()
  switch (topology) {
    case 'ring':
      out.add(mod(i - 1, n))
      out.add(mod(i + 1, n))
      break
    case 'torus': {
      const [r, c] = torusShape(n)
      const row = Math.floor(i / c)
      const col = i % c
      out.add(row * c + mod(col - 1, c))
      out.add(row * c + mod(col + 1, c))
      out.add(mod(row - 1, r) * c + col)
      out.add(mod(row + 1, r) * c + col)
      break
    }
    case 'clique':
      for (let j = 0; j < n; j++) out.add(j)
      break
    case 'star':
      if (i === psIndex) for (let j = 0; j < n; j++) out.add(j)
      else out.add(psIndex)
      break
    default:
      throw new Error(`undirectedAdj: ${topology} is directed`)
  }
  out.delete(i)
  return [...out].sort((a, b) => a - b)
}

function isDirected(topology: TopologyName): boolean {
  return topology === 'exponential' || topology === 'one-peer-exponential'
}

function psIndexOf(peers: readonly PeerId[], ps: PeerId | null | undefined): number {
  const i = ps ? peers.indexOf(ps) : -1
  return i >= 0 ? i : 0
}

/** Directed out-offsets at `step` (exponential: 2^j for j<τ; one-peer: the single 2^(step mod τ)). */
function directedOffsets(topology: TopologyName, n: number, step: number): number[] {
  const tau = log2Ceil(n)
  if (tau === 0) return []
  if (topology === 'exponential') return Array.from({ length: tau }, (_, j) => 1 << j)
  return [1 << mod(step, tau)]
}

/**
 * Neighbour sets of `self` in the roster `peers` at `step`. `ps` is roles.ps (star centre;
 * defaults to peers[0]). A peer absent from the roster has no neighbours.
 */
export function neighbors(
  topology: TopologyName, peers: readonly PeerId[], self: PeerId, step = 0, ps?: PeerId | null,
): NeighborSets {
  const n = peers.length
  const i = peers.indexOf(self)
  if (i < 0 || n <= 1) return { sendTo: [], receiveFrom: [], directed: isDirected(topology) }
  if (isDirected(topology)) {
    const offs = directedOffsets(topology, n, step)
    const send = [...new Set(offs.map((o) => mod(i + o, n)))].filter((j) => j !== i)
    const recv = [...new Set(offs.map((o) => mod(i - o, n)))].filter((j) => j !== i)
    return { sendTo: send.map((j) => peers[j]), receiveFrom: recv.map((j) => peers[j]), directed: true }
  }
  const adj = undirectedAdj(topology, n, i, psIndexOf(peers, ps)).map((j) => peers[j])
  return { sendTo: adj, receiveFrom: adj, directed: false }
}

/**
 * The symmetric version of a graph: W_s = (W + Wᵀ)/2 over the same edges, used in both directions.
 * Undirected graphs are their own symmetric version. On the directed exponential graphs every node
 * sends to and receives from the union of its out- and in-neighbours; each directed edge keeps half
 * its weight in each direction, so W_s is doubly stochastic with a real spectrum.
 * Why DecentLaM needs it: docs/algorithms.md "DecentLaM on directed graphs".
 */
export function symmetricNeighbors(
  topology: TopologyName, peers: readonly PeerId[], self: PeerId, step = 0, ps?: PeerId | null,
): NeighborSets {
  const s = neighbors(topology, peers, self, step, ps)
  if (!s.directed) return s
  const both = [...new Set([...s.sendTo, ...s.receiveFrom])]
  return { sendTo: both, receiveFrom: both, directed: false }
}

/** Row `self` of W_s = (W + Wᵀ)/2 (see symmetricNeighbors). */
export function symmetricMixingWeights(
  topology: TopologyName, peers: readonly PeerId[], self: PeerId, step = 0, ps?: PeerId | null,
): MixingWeights {
  if (!isDirected(topology)) return mixingWeights(topology, peers, self, step, ps)
  const w = mixingWeights(topology, peers, self, step, ps)
  const s = neighbors(topology, peers, self, step, ps)
  // Circulant W: row i's in-weights are all `each`, and so is column i's (the out-neighbours').
  const half = new Map<PeerId, number>()
  for (const [p, v] of w.in) half.set(p, (half.get(p) ?? 0) + v / 2)
  for (const p of s.sendTo) half.set(p, (half.get(p) ?? 0) + w.self / 2)
  return { self: w.self, in: half }
}

/**
 * Row `self` of the mixing matrix: Metropolis–Hastings for undirected graphs (docs/algorithms.md "Metropolis–Hastings weights"),
 * 1/(τ+1) for the static exponential graph (docs/algorithms.md "Exponential graph"), ½/½ for the one-peer graph (docs/algorithms.md "One-peer exponential graph").
 */
export function mixingWeights(
  topology: TopologyName, peers: readonly PeerId[], self: PeerId, step = 0, ps?: PeerId | null,
): MixingWeights {
  const n = peers.length
  const i = peers.indexOf(self)
  if (i < 0 || n <= 1) return { self: 1, in: new Map() }
  const sets = neighbors(topology, peers, self, step, ps)
  const w = new Map<PeerId, number>()
  if (isDirected(topology)) {
    // Circulant rows: in-degree = out-degree for every node, so columns also sum to one.
    const each = 1 / (sets.receiveFrom.length + 1)
    for (const p of sets.receiveFrom) w.set(p, each)
    return { self: each, in: w }
  }
  const psIdx = psIndexOf(peers, ps)
  const deg = (j: number) => undirectedAdj(topology, n, j, psIdx).length
  const di = deg(i)
  let sum = 0
  for (const p of sets.receiveFrom) {
    const wij = 1 / (1 + Math.max(di, deg(peers.indexOf(p))))
    w.set(p, wij)
    sum += wij
  }
  return { self: 1 - sum, in: w }
}

/** docs/algorithms.md "Deadlines and folding of missing neighbours": moves the weight of neighbours whose message did not arrive onto self (row stays stochastic). */
export function foldMissing(weights: MixingWeights, missing: Iterable<PeerId>): MixingWeights {
  const inW = new Map(weights.in)
  let self = weights.self
  for (const p of missing) {
    const wp = inW.get(p)
    if (wp === undefined) continue
    self += wp
    inW.delete(p)
  }
  return { self, in: inW }
}

/** Full n×n mixing matrix (row i = peers[i]); for tests and diagnostics. */
export function mixingMatrix(
  topology: TopologyName, peers: readonly PeerId[], step = 0, ps?: PeerId | null, opts: { symmetric?: boolean } = {},
): number[][] {
  return peers.map((p) => {
    const row = new Array<number>(peers.length).fill(0)
    const w = (opts.symmetric ? symmetricMixingWeights : mixingWeights)(topology, peers, p, step, ps)
    row[peers.indexOf(p)] = w.self
    for (const [q, v] of w.in) row[peers.indexOf(q)] += v
    return row
  })
}
