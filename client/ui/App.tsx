import { lazy, Suspense, type ReactNode } from 'react'
import { Link, useLocation } from './nav'
import { HostPage } from './HostPage'
import { DashboardPage } from './DashboardPage'
import { ProjectorPage } from './ProjectorPage'

/**
 * The volunteer page is the only one that trains: it pulls in TensorFlow.js and the session
 * (megabytes of JS and WebAssembly). Loaded on demand, so the dashboard, projector and host
 * pages never download them (tests/e2e/spectator-push.e2e.test.ts checks the network log).
 */
const VolunteerPage = lazy(() => import('./VolunteerPage').then((m) => ({ default: m.VolunteerPage })))

function segment(path: string, prefix: string): string | null {
  if (!path.startsWith(prefix)) return null
  const rest = decodeURIComponent(path.slice(prefix.length).replace(/\/+$/, ''))
  return rest || null
}

export function App() {
  const { path, search } = useLocation()
  const params = new URLSearchParams(search)
  const projector = segment(path, '/projector/')
  if (projector) return <ProjectorPage room={projector} />
  const room = segment(path, '/room/')
  let page: ReactNode
  if (room) page = <DashboardPage room={room} />
  else if (path === '/host' || path === '/host/') page = <HostPage room={params.get('room')} deleted={params.get('deleted')} />
  else page = (
    <Suspense fallback={<div className="card empty-state" aria-busy="true"><div className="spinner" aria-hidden="true" /></div>}>
      <VolunteerPage initialRoom={params.get('room')} backend={params.get('backend')} name={params.get('name')} />
    </Suspense>
  )
  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/" className="brand">
          <span className="brand-mark" aria-hidden="true">
            <i /> <i /> <i />
          </span>
          tabswarm
        </Link>
        <nav aria-label="Main">
          <Link to="/" className={!room && !path.startsWith('/host') ? 'active' : ''}>Join</Link>
          <Link to="/host" className={path.startsWith('/host') ? 'active' : ''}>Host a room</Link>
        </nav>
      </header>
      <main className="content">{page}</main>
    </div>
  )
}
