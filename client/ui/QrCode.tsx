import { useEffect, useState } from 'react'
import QRCode from 'qrcode'

/** A join link as a QR code (npm `qrcode`), rendered as an <img> so it scales crisply. */
export function QrCode({ text, size = 320, label }: { text: string; size?: number; label?: string }) {
  const [src, setSrc] = useState<string | null>(null)
  useEffect(() => {
    let live = true
    QRCode.toDataURL(text, { errorCorrectionLevel: 'M', margin: 1, width: size * 2, color: { dark: '#0f172a', light: '#ffffff' } })
      .then((url) => live && setSrc(url))
      .catch(() => live && setSrc(null))
    return () => {
      live = false
    }
  }, [text, size])
  return (
    <div className="qr" style={{ width: size, height: size }}>
      {src ? <img src={src} width={size} height={size} alt={label ?? `QR code for ${text}`} /> : null}
    </div>
  )
}
