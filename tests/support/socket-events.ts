import { io, type Socket } from 'socket.io-client'
import { afterEach } from 'vitest'
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

/**
 * Raw socket.io clients for one test file (a hostile script's view: websocket only, no
 * reconnection, one connection each); every client it made is disconnected after each test.
 */
export function testSockets(): (url: string) => Socket {
  const made: Socket[] = []
  afterEach(() => {
    for (const s of made.splice(0)) s.disconnect()
  })
  return (url) => {
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true })
    made.push(s)
    return s
  }
}
