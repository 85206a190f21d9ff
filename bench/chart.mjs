// An SVG bar chart of bench:compare's medians: one group of bars per workload, one bar per
// system, its writes/s written at its end. No dependencies; every text escaped.

const COLORS = ['#8c8c8c', '#4a4a4a', '#d9822b', '#2b7bd9', '#3aa655']
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** chart draws `report.results` ({ shards, system, medianWritesPerSec }[]) as SVG text. */
export function chart(report) {
  const groups = [...new Set(report.results.map((r) => r.shards))]
  const systems = [...new Set(report.results.map((r) => r.system))]
  const max = Math.max(1, ...report.results.map((r) => r.medianWritesPerSec))
  const bar = 22
  const left = 300
  const width = 860
  const scale = (width - left - 90) / max
  const rows = []
  let y = 50
  for (const g of groups) {
    rows.push(
      `<text x="10" y="${y}" font-weight="bold">${esc(g)} shard${g === 1 ? '' : 's'}</text>`,
    )
    y += 10
    for (const [i, s] of systems.entries()) {
      const r = report.results.find((x) => x.shards === g && x.system === s)
      if (!r) continue
      const w = Math.max(1, r.medianWritesPerSec * scale)
      const v = r.medianWritesPerSec.toLocaleString('en')
      rows.push(
        `<text x="${left - 8}" y="${y + 16}" text-anchor="end">${esc(s)}</text>`,
        `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar}"` +
          ` fill="${COLORS[i % COLORS.length]}"/>`,
        `<text x="${left + w + 6}" y="${y + 16}">${esc(v)}</text>`,
      )
      y += bar + 6
    }
    y += 24
  }
  const title = `writes/s, median of ${report.runs} runs of ${report.seconds} s (higher is better)`
  const head = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 20}"`,
    ' font-family="sans-serif" font-size="13">',
  ].join('')
  return [
    head,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15">${esc(title)}</text>`,
    ...rows,
    `<text x="10" y="${y + 8}" font-size="11" fill="#555">${esc(report.machine)}</text>`,
    '</svg>',
    '',
  ].join('\n')
}
