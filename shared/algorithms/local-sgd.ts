import type { AlgorithmName } from '../config'
import type { LocalStepOptions } from './types'
import { nextH } from '../schedule'
import type { AlgorithmFactory, AlgorithmInstance, StepReport } from './types'
import { allReduceWithRetry, averageParams, lrFor, others, requestState, startStateResponder } from './common'

/**
 * Local SGD / Local AdamW with QSR (§6): H local steps on the device (no host round trip),
 * then a sample-weighted parameter average over the roster (§6.6), optionally of the optimizer
 * state too; H recomputed right after each averaging from the global step (§6.5). A joiner takes
 * the group's average, t, round, H and position in the round.
 */
function makeLocal(name: AlgorithmName): AlgorithmFactory {
  return async (ctx) => {
    const { compute, config, mesh } = ctx
    const d = compute.paramCount
    const adam = name === 'local-adamw'
    let t = 0
    let round = 0
    let localCnt = 0
    let samplesInRound = 0
    let h = nextH(config.sync, 0, lrFor(ctx, 0), config.totalSteps, config.schedule.warmupSteps)
    let ready = false
    const stop = startStateResponder(ctx, async () =>
      ready ? { params: await compute.readParams(), opt: [], step: t, globalStep: t, extra: { round, h, localCnt } } : null)
    const states = await requestState(ctx, others(ctx))
    if (states.length > 0) {
      const s = states[0]
      await compute.writeParams(averageParams(states))
      t = s.globalStep
      round = s.extra.round ?? 0
      h = s.extra.h ?? h
      localCnt = s.extra.localCnt ?? 0
      mesh.clock.observe(t)
    }
    ready = true

    const opts = (lr: number): LocalStepOptions => adam
      ? { optimizer: 'adamw', lr, beta1: config.adam.beta1, beta2: config.adam.beta2, eps: config.adam.eps, weightDecay: config.weightDecay }
      : { optimizer: 'sgd', lr, momentum: config.momentum, weightDecay: config.weightDecay }

    const inst: AlgorithmInstance = {
      name,
      async step(): Promise<StepReport> {
        const lr = lrFor(ctx, t)
        const { loss, samples } = await compute.localStep(opts(lr))
        t++
        localCnt++
        samplesInRound += samples
        mesh.clock.advance(t)
        const report: StepReport = { step: t, globalStep: t, loss, samples, lr, h, communicated: false }
        if (localCnt < h) return report
        const x = await compute.readParams()
        const state = config.averageOptimizerState ? await compute.readOptimizerState() : []
        // Average moments only (Adam's step counter stays local).
        const avgState = adam ? state.slice(0, 2) : state.slice(0, 1)
        const c = Math.max(1, samplesInRound)
        const res = await allReduceWithRetry(ctx, name, round, () => {
          const v = new Float32Array(d * (1 + avgState.length) + 1)
          for (let i = 0; i < d; i++) v[i] = c * x[i]
          avgState.forEach((s, k) => { for (let i = 0; i < d; i++) v[(k + 1) * d + i] = c * s[i] })
          v[v.length - 1] = c
          return v
        })
        if (res) {
          const inv = 1 / res.sum[res.sum.length - 1]
          const xs = res.sum.subarray(0, d).map((v) => v * inv)
          await compute.writeParams(xs)
          if (avgState.length) {
            const ns = avgState.map((_, k) => res.sum.slice((k + 1) * d, (k + 2) * d).map((v) => v * inv))
            await compute.writeOptimizerState(adam ? [...ns, ...state.slice(2)] : ns)
          }
          report.contributors = res.members
        }
        report.communicated = res !== null
        round++
        localCnt = 0
        samplesInRound = 0
        h = nextH(config.sync, t, lrFor(ctx, t), config.totalSteps, config.schedule.warmupSteps)
        return report
      },
      evalParams: () => compute.readParams(),
      async leave() {
        stop()
      },
      dispose() {
        stop()
      },
    }
    return inst
  }
}

export const localSgd = makeLocal('local-sgd')
export const localAdamw = makeLocal('local-adamw')
