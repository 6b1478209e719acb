/** Seeded randomness for deterministic tests and fault injection (never Math.random). */

import { mulberry32 } from '../math/random'

export { mulberry32 }

export class Rng {
  private readonly u: () => number
  private spare: number | null = null
  constructor(seed: number) {
    this.u = mulberry32(seed)
  }
  next(): number {
    return this.u()
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.u() * n)
  }
  /** Standard normal (Box–Muller, caching the second draw). */
  gaussian(): number {
    if (this.spare !== null) {
      const s = this.spare
      this.spare = null
      return s
    }
    let u = 0
    while (u === 0) u = this.u()
    const v = this.u()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[a[i], a[j]] = [a[j], a[i]]
    }
    return a
  }
}
