/**
 * The single-page app's routes, shared so the server answers exactly these with the app shell
 * (client/ui/App.tsx renders them) and every other path with a real 404 page.
 */
const APP_ROUTES: readonly RegExp[] = [
  /^\/$/,
  /^\/index\.html$/,
  /^\/host\/?$/,
  /^\/room\/[^/]+\/?$/,
  /^\/projector\/[^/]+\/?$/,
]

/** True for a path (no query) that the client renders; `pathname` as the URL carries it (percent-encoded). */
export function isAppRoute(pathname: string): boolean {
  return APP_ROUTES.some((r) => r.test(pathname))
}
