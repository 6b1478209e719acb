// Moved to shared/algorithms/inprocess-hogwild.ts: lap-sgd's one-updater fallback uses it outside tests.
export { gradientFromComputes, InProcessHogwildPool, type HogwildGradient } from '../algorithms/inprocess-hogwild'
