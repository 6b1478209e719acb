/**
 * A Node volunteer's mesh in its own OS process (mesh-peer-core.ts), driven over IPC by the WebRTC
 * mesh integration tests (client/mesh/webrtc-mesh.int.test.ts) over a Node WebRTC stack
 * (@roamhq/wrtc by default, or node-datachannel: PeerInit.webrtc, client/mesh/node-webrtc.ts).
 * Started with `fork(file, { execArgv: ['--import', 'tsx'], serialization: 'advanced' })`.
 */
import { loadNodeWebRtc } from '../node-webrtc'
import { createMeshPeer, type ChildToParent, type ParentToChild } from './mesh-peer-core'

export type { ChildToParent, ParentToChild, PeerInit } from './mesh-peer-core'

const handle = createMeshPeer({
  agent: 'node',
  post: (m: ChildToParent) => process.send?.(m),
  loadWrtc: (init) => loadNodeWebRtc(init.webrtc ?? {}),
  fatal: () => process.exit(2),
})

process.on('message', (msg: ParentToChild) => void handle(msg))
process.on('disconnect', () => process.exit(0))
