/**
 * Every message kind the algorithms send is built here. Code outside an algorithm reads kinds too
 * (the mesh sends increments with error feedback, client/session/platform.ts via descriptors.ts),
 * so each format is parsed only next to the builder that writes it. No imports: the signaling
 * server and the UI load this through descriptors.ts without any algorithm code.
 *
 * Patterns: a builder given a placeholder such as '<epoch>' instead of a number returns the kind's
 * pattern; `kindMatcher` turns a pattern back into a predicate.
 */

/** A number in a kind, or a '<name>' placeholder standing for any non-negative integer. */
type Part = number | `<${string}>`

/** Joiner bootstrap (common.ts requestState / startStateResponder). */
export const STATE_KIND = { request: 'state/request', response: 'state/response' } as const

/** Graceful leave (common.ts handOverModel / LeaveInbox). */
export const LEAVE_KIND = { model: 'leave/model', ack: 'leave/ack' } as const

/** The one vector a neighbour-gossip peer sends each step (gossip-kernel.ts). */
export function gossipKind(algorithm: string): string {
  return `${algorithm}/x`
}

/**
 * Ring all-reduce (common.ts): an attempt of collective `name` in roster epoch `epoch` is tagged
 * `<name>/e<epoch>`; hop s of it sends `<tag>/rs<s>` (reduce-scatter: partial sums of the input)
 * and `<tag>/ag<s>` (all-gather: reduced chunks).
 */
export function allReduceTag(name: string, epoch: Part): string {
  return `${name}/e${epoch}`
}
export function reduceScatterKind(tag: string, hop: Part): string {
  return `${tag}/rs${hop}`
}
export function allGatherKind(tag: string, hop: Part): string {
  return `${tag}/ag${hop}`
}

/** The kinds of collective `name` as patterns: reduce-scatter first, then all-gather. */
export function allReduceKinds(name: string): [reduceScatter: string, allGather: string] {
  const tag = allReduceTag(name, '<epoch>')
  return [reduceScatterKind(tag, '<hop>'), allGatherKind(tag, '<hop>')]
}

/**
 * Robust all-gather (common.ts allGatherWithRetry, `robust: 'on'`): an attempt of collective `name`
 * in roster epoch `epoch` (the same tag as the ring's) sends each member's whole vector to every
 * other member as `<tag>/all`.
 */
export function robustGatherKind(tag: string): string {
  return `${tag}/all`
}

/** The robust all-gather kind of collective `name` as a pattern. */
export function robustGatherKinds(name: string): string {
  return robustGatherKind(allReduceTag(name, '<epoch>'))
}

/**
 * SSGD's two collectives: the sample-weighted gradient sum of every step, and the resync that
 * averages x and m. Only the first carries increments.
 */
export const SSGD_COLLECTIVE = { gradient: 'ssgd', resync: 'ssgd-resync' } as const

/** Parameter-server kinds (ps-common.ts), namespaced `<algorithm>/<kind>` by asgd and od-sgd. */
export const PS_KIND = {
  hello: 'hello',
  push: 'push',
  weights: 'weights',
  handover: 'handover',
  handoverAck: 'handover-ack',
  announce: 'ps-state',
} as const

export function psKind(algorithm: string, kind: keyof typeof PS_KIND): string {
  return `${algorithm}/${PS_KIND[kind]}`
}

/** OD-SGD's answer to a joiner's hello: the round t and W_t. */
export const OD_SGD_STATE_KIND = 'od-sgd/state'

/** AD-PSGD's pairwise exchange and its bootstrap (ad-psgd.ts). */
export const AD_PSGD_KIND = {
  request: 'ad-psgd/request',
  accept: 'ad-psgd/accept',
  busy: 'ad-psgd/busy',
  exchange: 'ad-psgd/exchange',
  cancel: 'ad-psgd/cancel',
  done: 'ad-psgd/done',
  stateRequest: 'ad-psgd/state-request',
  state: 'ad-psgd/state',
} as const

/** Predicate for the kinds a pattern stands for (each '<…>' matches a non-negative integer). */
export function kindMatcher(pattern: string): (kind: string) => boolean {
  const literal = pattern.split(/<[^>]*>/).map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
  const re = new RegExp(`^${literal.join('\\d+')}$`)
  return (kind) => re.test(kind)
}
