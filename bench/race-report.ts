import { readFileSync } from 'node:fs'
import { markdownTable, summarizeRuns, type RaceRun } from './race-lib'

/**
 * Markdown for docs/reproductions.md from race JSON files: the table (medians and ranges over
 * repeats) of all runs in them, and text charts of the swarm's accuracy against time and against
 * megabytes sent per peer, one per link profile.
 *   npx tsx bench/race-report.ts bench/results/race-A.json [race-B.json …] [--floor 0.8] [--chart-rows a,b] [--mb-max MB]
 */
const args = process.argv.slice(2)
const valueOf = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined)
const floor = Number(valueOf('--floor') ?? 0.8)
// Charts are legible with a few rows: --chart-rows a,b picks them (seed 0 only), --mb-max cuts the bytes axis.
const chartRows = valueOf('--chart-rows')?.split(',')
const mbMax = Number(valueOf('--mb-max') ?? Infinity)
const valueAt = new Set(['--floor', '--chart-rows', '--mb-max'].filter((f) => args.includes(f)).map((f) => args.indexOf(f) + 1))
const files = args.filter((a, i) => !a.startsWith('--') && !valueAt.has(i))
const runs: RaceRun[] = files.flatMap((f) => (JSON.parse(readFileSync(f, 'utf8')) as { result: { runs: RaceRun[] } }).result.runs)

/** A text chart: one letter per row label, y = accuracy from `floor` to 1. */
export function textChart(series: { label: string; points: { x: number; y: number }[] }[], xName: string, width = 64, height = 21): string {
  const xMax = Math.max(1e-9, ...series.flatMap((s) => s.points.map((p) => p.x)))
  const grid = Array.from({ length: height }, () => Array<string>(width).fill(' '))
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
  series.forEach((s, k) => {
    for (const p of s.points) {
      if (p.y < floor) continue
      const col = Math.min(width - 1, Math.round((p.x / xMax) * (width - 1)))
      const row = height - 1 - Math.min(height - 1, Math.round(((p.y - floor) / (1 - floor)) * (height - 1)))
      grid[row][col] = letters[k % letters.length]
    }
  })
  const lines = grid.map((r, i) => {
    const y = 1 - (i / (height - 1)) * (1 - floor)
    return `${(y * 100).toFixed(1).padStart(5)} % |${r.join('')}`
  })
  lines.push(`        +${'-'.repeat(width)}`)
  lines.push(`         0${xName.padStart(width - 1 - xMax.toFixed(0).length)} ${xMax.toFixed(0)}`)
  lines.push(...series.map((s, k) => `        ${letters[k % letters.length]} = ${s.label}`))
  return lines.join('\n')
}

console.log(markdownTable(summarizeRuns(runs)))
for (const link of [...new Set(runs.map((r) => r.link))]) {
  const here = runs.filter((r) => r.link === link && (!chartRows || (chartRows.includes(r.label) && r.seed === 0)))
  const name = (r: RaceRun) => `${r.label} (${r.dataset} ${r.partition}, seed ${r.seed})`
  console.log(`\nAccuracy vs seconds, ${link}:\n\n\`\`\`\n${textChart(here.map((r) => ({ label: name(r), points: r.curve.map((p) => ({ x: p.t, y: p.accuracy })) })), 's')}\n\`\`\``)
  console.log(`\nAccuracy vs MB sent per peer, ${link}:\n\n\`\`\`\n${textChart(here.map((r) => ({ label: name(r), points: r.curve.filter((p) => p.bytesPerPeer / 1e6 <= mbMax).map((p) => ({ x: p.bytesPerPeer / 1e6, y: p.accuracy })) })), 'MB')}\n\`\`\``)
}
