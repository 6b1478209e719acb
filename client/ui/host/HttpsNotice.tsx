import { useEffect, useState } from 'react'
import { infoResponseSchema, type InfoResponse } from '../../../shared/protocol/http'

/**
 * Two lines for the teacher about what students' browsers will make of the join link: over
 * plain http on a LAN address their tabs get no WebGPU and no shared-memory workers (browsers
 * keep both for secure contexts); over HTTPS with the generated certificate they see a warning
 * once per device. Silent with a real certificate, behind an https PUBLIC_URL, and when only
 * this machine can open the link (LocalOnlyWarning covers that).
 */

const loose = infoResponseSchema.partial()

function useInfo(): Partial<InfoResponse> | null {
  const [info, setInfo] = useState<Partial<InfoResponse> | null>(null)
  useEffect(() => {
    const ctrl = new AbortController()
    fetch('/api/info', { signal: ctrl.signal, cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((body: unknown) => {
        const p = loose.safeParse(body)
        if (p.success) setInfo(p.data)
      })
      .catch(() => undefined)
    return () => ctrl.abort()
  }, [])
  return info
}

export function HttpsNotice() {
  const info = useInfo()
  if (!info?.publicUrl || info.localOnly) return null
  let url: URL
  try {
    url = new URL(info.publicUrl)
  } catch {
    return null
  }
  if (url.protocol === 'http:') {
    return (
      <p className="banner warn compact" role="status" data-testid="https-notice">
        Students open <code>{url.host}</code> over plain http, so their tabs train without WebGPU and <code>lap-sgd</code> runs one updater per tab.{' '}
        Start the server with <code>npm start -- --https</code> (or <code>HTTPS=1</code>) to give them both.
      </p>
    )
  }
  if (info.tls === 'self-signed') {
    return (
      <p className="banner compact" role="status" data-testid="https-notice">
        Students’ browsers will warn once that the connection is not private: the certificate is self-signed. They choose Advanced, then Proceed.{' '}
        To avoid the warning, start the server with <code>TLS_CERT</code> and <code>TLS_KEY</code> set to a real certificate for <code>{url.hostname}</code>.
      </p>
    )
  }
  return null
}
