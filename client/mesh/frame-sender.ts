import type { ShapedLink } from '../../shared/link-conditions'
import { DeadlineError, PeerUnavailableError, type LinkStats, type PeerId } from '../../shared/transport'
import type { DataChannelLike } from './data-channel'

/** Fallback poll for stacks whose 'bufferedamountlow' event is unreliable. */
const DRAIN_POLL_MS = 20

/** Byte and frame counters shared by every link of one mesh (its stats() and diagnostics()). */
export interface TrafficCounters {
  readonly total: LinkStats
  /** Per peer, kept across that peer's successive links. */
  readonly perLink: Record<PeerId, LinkStats>
  framesSent: number
  /** bufferedAmount readings taken for those frames (see FrameSender.writeFrame). */
  bufferedReads: number
  /** Largest bufferedAmount seen right before a send (shows backpressure holds the high-water mark). */
  peakBuffered: number
}

export function newTrafficCounters(): TrafficCounters {
  return { total: { bytesSent: 0, bytesReceived: 0 }, perLink: {}, framesSent: 0, bufferedReads: 0, peakBuffered: 0 }
}

export interface FrameSenderOptions {
  peer: PeerId
  /** The open channel, or null once the link is gone (or before it opened). */
  channel: () => DataChannelLike | null
  /** Pause sending above this many bytes queued on the data channel… */
  highWaterMark: number
  /** …and resume when it drains below this. */
  lowWaterMark: number
  /** This peer's entry in counters.perLink. */
  stats: LinkStats
  counters: TrafficCounters
  /** The channel refused a frame: the link is broken. */
  onSendFailed: (reason: string) => void
  /**
   * Emulated link conditions (shared/link-conditions.ts): each frame is held there until its
   * emulated arrival and only then goes onto the channel. Absent: frames go out at once.
   */
  shaped?: ShapedLink | null
}

/**
 * One link's outgoing side: jobs run one after another (frames of two messages must never
 * interleave), and frames go onto the data channel with backpressure on its bufferedAmount.
 */
export class FrameSender {
  private chain: Promise<void> = Promise.resolve()

  constructor(private readonly o: FrameSenderOptions) {}

  /**
   * Runs `job` after the previous ones. If `signal` aborts, the caller gets the DeadlineError at
   * once, but a job already started is still finished in the background so the receiver never
   * sees a torn message.
   */
  enqueue(signal: AbortSignal | undefined, job: () => Promise<void>): Promise<void> {
    let started = false
    let cancelled = false
    const run = this.chain.then(() => {
      if (cancelled) return
      started = true
      return job()
    })
    this.chain = run.catch(() => {})
    if (!signal) return run
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (!started) cancelled = true
        reject(signal.reason ?? new DeadlineError('mesh.send'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      run.then(
        () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
        (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  /** Writes `frames` in order, pulling each one only when the channel can take it. */
  async writeFrames(frames: Iterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const shaped = this.o.shaped
    if (shaped) {
      // The frames are the wire encoder's own copies, so holding them is safe. A frame half-way
      // through a message is never abandoned on abort (the receiver would see a torn message):
      // only the wait for the first frame's room is cancellable.
      let first = true
      for (const f of frames) {
        // The real channel still bounds what it queues, should it be slower than the emulation.
        const ch = this.o.channel()
        if (!ch || ch.readyState !== 'open') throw new PeerUnavailableError(this.o.peer, 'link closed')
        if (ch.bufferedAmount > this.o.highWaterMark) await this.drain(ch)
        await shaped.send(f.byteLength, () => this.writeHeld(f), first ? signal : undefined)
        first = false
        this.o.stats.bytesSent += f.byteLength
        this.o.counters.total.bytesSent += f.byteLength
        this.o.counters.framesSent++
      }
      return
    }
    let bound = -1
    for (const f of frames) bound = await this.writeFrame(f, bound)
  }

  /**
   * A shaped frame's emulated arrival: onto the channel now. The link may have gone meanwhile
   * (the frame is then lost with it, as on a real network); a refused send breaks the link.
   */
  private writeHeld(frame: Uint8Array): void {
    const ch = this.o.channel()
    if (!ch || ch.readyState !== 'open') return
    try {
      ch.send(frame)
    } catch (e) {
      this.o.onSendFailed(`send failed: ${String(e)}`)
    }
  }

  /**
   * Sends one frame, waiting for the channel to drain if it is over the high-water mark.
   * `bound` is the previous frame's return value: an upper bound on bufferedAmount (the last
   * reading plus what was queued since; the queue only drains in between), or −1 for none. While
   * the bound plus this frame stays under the mark, the channel is not asked again: readyState
   * and bufferedAmount are each a blocking call into libwebrtc's signaling thread in wrtc
   * (~20 µs of CPU idle, far more when the model's threads hold every core), as many as the
   * frames themselves. A channel that closed meanwhile makes send() throw, handled below.
   */
  private async writeFrame(frame: Uint8Array, bound: number): Promise<number> {
    const { counters, highWaterMark: hwm } = this.o
    const ch = this.o.channel()
    if (!ch) throw new PeerUnavailableError(this.o.peer, 'link closed')
    let buffered = bound
    if (bound < 0 || bound + frame.byteLength > hwm) {
      if (ch.readyState !== 'open') throw new PeerUnavailableError(this.o.peer, 'link closed')
      buffered = ch.bufferedAmount
      counters.bufferedReads++
      if (buffered > hwm) {
        await this.drain(ch)
        if (!this.o.channel()) throw new PeerUnavailableError(this.o.peer, 'link closed')
        buffered = ch.bufferedAmount
      }
    }
    if (buffered > counters.peakBuffered) counters.peakBuffered = buffered
    try {
      ch.send(frame)
    } catch (e) {
      this.o.onSendFailed(`send failed: ${String(e)}`)
      throw new PeerUnavailableError(this.o.peer, 'send failed')
    }
    counters.framesSent++
    this.o.stats.bytesSent += frame.byteLength
    counters.total.bytesSent += frame.byteLength
    return buffered + frame.byteLength
  }

  /** Waits until the channel's queue drains below the low-water mark (event, with a poll fallback). */
  private drain(ch: DataChannelLike): Promise<void> {
    const low = this.o.lowWaterMark
    ch.bufferedAmountLowThreshold = low
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setInterval> | null = null
      const done = () => {
        if (timer) clearInterval(timer)
        ch.removeEventListener?.('bufferedamountlow', check)
        resolve()
      }
      const check = () => {
        if (!this.o.channel() || ch.readyState !== 'open' || ch.bufferedAmount <= low) done()
      }
      ch.addEventListener?.('bufferedamountlow', check)
      timer = setInterval(check, DRAIN_POLL_MS)
      check()
    })
  }
}
