/** Bumped on any incompatible change to signaling or peer messages. */
export const PROTOCOL_VERSION = 1 as const
