import { useEffect, useState, type ReactNode } from 'react'

/**
 * Client-side navigation without a router: push a path, re-render on popstate. `replace`: in
 * place of the current entry, so Back does not return to a page that is gone (a deleted room).
 */
export function navigate(to: string, { replace = false }: { replace?: boolean } = {}) {
  if (replace) window.history.replaceState(null, '', to)
  else window.history.pushState(null, '', to)
  window.dispatchEvent(new PopStateEvent('popstate'))
}

export function useLocation() {
  const [loc, setLoc] = useState(() => ({ path: window.location.pathname, search: window.location.search }))
  useEffect(() => {
    const on = () => setLoc({ path: window.location.pathname, search: window.location.search })
    window.addEventListener('popstate', on)
    return () => window.removeEventListener('popstate', on)
  }, [])
  return loc
}

export function Link({ to, children, className, newTab }: { to: string; children: ReactNode; className?: string; newTab?: boolean }) {
  if (newTab) return <a href={to} className={className} target="_blank" rel="noopener">{children}</a>
  return (
    <a
      href={to}
      className={className}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return
        e.preventDefault()
        navigate(to)
      }}
    >
      {children}
    </a>
  )
}
