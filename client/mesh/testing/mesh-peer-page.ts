/**
 * The mesh test peer in a browser page (client/testing/mesh-peer.html, built with the app so it
 * uses the same bundling of simple-peer and socket.io): the browser's own RTCPeerConnection under
 * WebRtcMesh. The test exposes `__meshEmit` before the page loads and calls `__meshPeer.handle`;
 * both carry port-codec strings.
 */
import { createMeshPeer, type ChildToParent, type ParentToChild } from './mesh-peer-core'
import { decodePortMessage, encodePortMessage } from './port-codec'

type PageGlobals = { __meshEmit?: (s: string) => Promise<void>; __meshPeer?: { handle(s: string): Promise<void> } }
const g = window as unknown as PageGlobals

const handle = createMeshPeer({
  agent: 'browser',
  post: (m: ChildToParent) => void g.__meshEmit?.(encodePortMessage(m)),
  loadWrtc: async () => undefined,
  fatal: () => {},
})
g.__meshPeer = { handle: (s) => handle(decodePortMessage<ParentToChild>(s)) }
document.title = 'tabswarm mesh test peer (ready)'
