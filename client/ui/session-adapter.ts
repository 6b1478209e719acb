// The UI reaches the training session only through this seam (docs/architecture.md "Layers": ui → session).
export { createBrowserSession, saveName, savedName } from '../session/browser-session'
