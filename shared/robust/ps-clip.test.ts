import { describe, expect, it } from 'vitest'
import { dist, distAndNorm, norm } from './clip'
import { PullCheck, PushClipper, PushShareLimiter } from './ps-clip'

const f32 = (...v: number[]) => Float32Array.from(v)

describe('PushClipper', () => {
  it('clips a push to 3 × the median of the recent push norms (recorded clipped); the server\'s own gradient is never clipped', () => {
    const reports: string[] = []
    const c = new PushClipper((p, why) => reports.push(`${p}: ${why}`))
    // Fewer than 3 norms: no bound yet.
    expect(c.clip('w1', f32(3, 4)).scale).toBe(1) // 5
    expect(c.clip('ps', f32(0, 10), true).scale).toBe(1) // 10
    expect(c.clip('w2', f32(6, 8)).scale).toBe(1) // 10 → median 10, bound 30
    const big = c.clip('bad', f32(300, 400)) // 500 → 30
    expect(big.tau).toBe(30)
    expect(big.scale).toBeCloseTo(0.06, 12)
    expect(Array.from(big.g)).toEqual([Math.fround(18), Math.fround(24)])
    expect(norm(big.g)).toBeCloseTo(30, 4)
    // Recorded as 30: the median is (10 + 10)/2 … of 5, 10, 10, 30 → 10.
    expect(c.history.median()).toBe(10)
    // Trusted: recorded, never clipped.
    expect(c.clip('ps', f32(0, 1000), true).scale).toBe(1)
    // Within the bound the push itself is returned (no copy).
    const g = f32(1, 1)
    expect(c.clip('w1', g).g).toBe(g)
    expect(reports).toEqual([])
  })

  it('reports a worker whose pushes are clipped 10 times in a row', () => {
    const reports: string[] = []
    const c = new PushClipper((p, why) => reports.push(`${p}: ${why}`))
    for (let k = 0; k < 3; k++) c.clip('w', f32(1, 0))
    // Interleaved with an honest worker's pushes (which do not reset the hostile one's run).
    for (let k = 0; k < 10; k++) {
      c.clip('bad', f32(100, 0))
      c.clip('w', f32(0, 1))
    }
    expect(reports).toEqual(['bad: pushed gradient clipped in 10 consecutive rounds (‖Δ‖ = 100 > τ = 3.00)'])
  })
})

describe('PushShareLimiter', () => {
  it('a flooding worker gets at most 2 × its fair share of the last 8·n pushes; the honest ones are never refused', () => {
    const l = new PushShareLimiter()
    const n = 4 // workers: window 32, limit 16 (fair share 8)
    let bad = 0
    let refused = 0
    for (let round = 0; round < 40; round++) {
      for (const w of ['w1', 'w2', 'w3']) expect(l.admit(w, n)).toBe(true)
      // The attacker pushes five times for each honest push.
      for (let k = 0; k < 5; k++) {
        if (l.admit('bad', n)) bad++
        else refused++
      }
    }
    expect(l.count('bad')).toBeLessThanOrEqual(16)
    // Half of what was applied at most (2 × the fair quarter), against 5/8 without the limit.
    expect(bad / (bad + 120)).toBeLessThanOrEqual(0.5 + 16 / 136)
    expect(refused).toBeGreaterThan(60)
  })

  it('a worker left alone is refused for at most one window, then admitted again', () => {
    const l = new PushShareLimiter()
    for (let k = 0; k < 10; k++) for (const w of ['a', 'b', 'c', 'd']) expect(l.admit(w, 4)).toBe(true)
    // b, c and d stop pushing; a goes on alone.
    const refusedAt: number[] = []
    for (let k = 0; k < 100; k++) if (!l.admit('a', 4)) refusedAt.push(k)
    expect(refusedAt.length).toBeGreaterThan(0)
    expect(Math.max(...refusedAt)).toBeLessThan(32)
  })

  it('three workers, one twice as fast as the others: nobody is refused', () => {
    const l = new PushShareLimiter()
    for (let k = 0; k < 200; k++) {
      expect(l.admit('fast', 3)).toBe(true)
      expect(l.admit('fast', 3)).toBe(true)
      expect(l.admit('slow1', 3)).toBe(true)
      expect(l.admit('slow2', 3)).toBe(true)
    }
  })
})

describe('PullCheck', () => {
  it('accepts pulls within ½‖Ŵ‖ (or 4 × the median recent pull distance); rejects and, 10 in a row, reports beyond', () => {
    const reports: string[] = []
    const pc = new PullCheck((p, why) => reports.push(`${p}: ${why}`))
    const own = f32(3, 4) // ½‖own‖ = 2.5
    expect(pc.check('ps', f32(3, 5), own)).toEqual({ ok: true, dist: 1, bound: 2.5 })
    // 100 × model (at 495) and −10 × model (at 55): rejected, the bound growing by 2.5 per rejection in a row.
    expect(pc.check('ps', f32(300, 400), own)).toEqual({ ok: false, dist: 495, bound: 2.5 })
    expect(pc.check('ps', f32(-30, -40), own)).toEqual({ ok: false, dist: 55, bound: 5 })
    for (let k = 0; k < 7; k++) expect(pc.check('ps', f32(-30, -40), own).ok).toBe(false)
    expect(reports).toEqual([])
    pc.check('ps', f32(-30, -40), own)
    expect(reports).toEqual(['ps: pulled weights rejected 10 times in a row (‖W − Ŵ‖ = 55.0 > 25.0)'])
    // Own model exactly 0 and no history: nothing to compare against.
    expect(new PullCheck().check('ps', f32(1, 1), f32(0, 0)).ok).toBe(true)
  })

  it('an honest server whose W ran ahead of a worker (rejected once) does not lock the worker out', () => {
    const pc = new PullCheck()
    const own = Float32Array.from({ length: 4 }, () => 10) // ½‖own‖ = 10
    // History: pulls 1 apart → bound max(10, 4) = 10. The server then moves 3 per pull.
    for (let k = 1; k <= 4; k++) expect(pc.check('ps', own.map((v, i) => (i === 0 ? v + 1 : v)), own).ok).toBe(true)
    let W = own.map((v, i) => (i === 0 ? v + 11 : v)) // 11 away: rejected
    expect(pc.check('ps', W, own).ok).toBe(false)
    W = W.map((v, i) => (i === 0 ? v + 3 : v)) // 14 away, bound now 20
    expect(pc.check('ps', W, own).ok).toBe(true)
  })
})

describe('one pass per vector (the robust PS path reads a push or a pull once)', () => {
  it('distAndNorm equals dist and norm; norm is the finiteness check (NaN/Inf in, non-finite out; 3.4e38 stays finite)', () => {
    const a = f32(1, 2, 3)
    const b = f32(4, 6, 3)
    expect(distAndNorm(a, b)).toEqual({ dist: dist(a, b), norm: norm(b) })
    expect(Number.isFinite(norm(f32(1, NaN)))).toBe(false)
    expect(Number.isFinite(norm(f32(1, -Infinity)))).toBe(false)
    expect(Number.isFinite(norm(new Float32Array(1 << 16).fill(3.4e38)))).toBe(true)
  })

  it('PushClipper.clip with the caller\'s norm gives what it computes itself', () => {
    const a = new PushClipper()
    const b = new PushClipper()
    for (const g of [f32(3, 4), f32(6, 8), f32(1, 1), f32(300, 400), f32(0, 2)]) {
      const x = a.clip('w', g)
      const y = b.clip('w', g, false, norm(g))
      expect(y.scale).toBe(x.scale)
      expect(Array.from(y.g)).toEqual(Array.from(x.g))
    }
  })

  it('PullCheck.check uses ‖Ŵ‖ from the same pass: the ½‖Ŵ‖ floor still applies before any history', () => {
    const p = new PullCheck()
    const own = f32(3, 4) // ‖Ŵ‖ = 5, floor 2.5
    expect(p.check('ps', f32(3, 6), own)).toEqual({ ok: true, dist: 2, bound: 2.5 })
    expect(p.check('ps', f32(3, 7), own).ok).toBe(false)
  })
})
