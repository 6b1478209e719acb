// The UI reaches the training session only through this seam (STYLE.md: ui → session).
export { createBrowserSession } from '../session/browser-session'
