import type { Socket } from 'socket.io-client'
import { deadline } from '../../shared/transport'

/** How long a test waits for one socket event before its named deadline fails it. */
export const EVENT_DEADLINE_MS = 10_000

/** The next `event` on `socket` that passes `pred`, or a named deadline error (tests wait on events, not sleeps). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function nextEvent<T = Record<string, any>>(socket: Socket, event: string, name: string, pred: (p: T) => boolean = () => true): Promise<T> {
  const signal = deadline(name, EVENT_DEADLINE_MS)
  return new Promise((resolve, reject) => {
    const onEvent = (p: T) => {
      if (!pred(p)) return
      socket.off(event, onEvent)
      resolve(p)
    }
    socket.on(event, onEvent)
    signal.addEventListener('abort', () => { socket.off(event, onEvent); reject(signal.reason) }, { once: true })
  })
}
