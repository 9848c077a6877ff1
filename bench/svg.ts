/**
 * The plot: cost against layer depth, one small multiple per workload and
 * temperature, log-scale seconds on y, depth on a log2 x axis, one line per
 * system. Plain SVG text, no plotting package.
 *
 * A point that hit the time limit is drawn hollow at the limit (the real
 * cost is higher); a run that failed is left out.
 */
import { rowKeys, systemsOf, find, type Results } from './results'

const COLORS: Record<string, string> = {
  native: '#222222',
  overlayfs: '#1f77b4',
  'fuse-overlayfs': '#ff7f0e',
  'unionfs-fuse': '#2ca02c',
  'unionfs-ts': '#d62728',
  'unionfs-ts-nocache': '#9467bd',
  'unionfs-ts-noxattr': '#e377c2'
}
const DASHED = new Set(['native', 'unionfs-ts-nocache'])
const SPARE = ['#8c564b', '#7f7f7f', '#bcbd22', '#17becf']

const COLS = 4
const PW = 300
const PH = 220
const ML = 50
const MR = 12
const MT = 30
const MB = 34
const LEGEND = 56

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function tickLabel (exp: number): string {
  const v = Math.pow(10, exp)
  if (v >= 1) return `${v}s`
  if (v >= 1e-3) return `${+(v * 1000).toPrecision(3)}ms`
  return `${+(v * 1e6).toPrecision(3)}µs`
}

export function depthSvg (res: Results): string {
  const systems = systemsOf(res)
  const color = (s: string, i: number): string => COLORS[s] ?? SPARE[i % SPARE.length]
  const keys = rowKeys(res)
  const depths = [...res.meta.depths].sort((a, b) => a - b)
  const rows = Math.ceil(keys.length / COLS)
  const width = COLS * PW
  const height = LEGEND + rows * PH + 20
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`)
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  const p = res.meta.params as { files?: number }
  const title = `unionfs-ts bench: seconds against layer depth (${res.meta.mode} mode, ${p.files ?? '?'} files, ${res.meta.started.slice(0, 10)})`
  out.push(`<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`)
  // Legend
  let lx = 10
  systems.forEach((s, i) => {
    const dash = DASHED.has(s) ? ' stroke-dasharray="5,3"' : ''
    out.push(`<line x1="${lx}" y1="38" x2="${lx + 24}" y2="38" stroke="${color(s, i)}" stroke-width="2.5"${dash}/>`)
    out.push(`<circle cx="${lx + 12}" cy="38" r="3" fill="${color(s, i)}"/>`)
    out.push(`<text x="${lx + 30}" y="42">${esc(s)}</text>`)
    lx += 40 + s.length * 7
  })
  out.push(`<text x="${lx + 10}" y="42" fill="#666">hollow: hit the ${res.meta.timeoutSeconds} s limit</text>`)

  const dMin = Math.log2(depths[0])
  const dMax = Math.log2(depths[depths.length - 1])
  keys.forEach((k, idx) => {
    const ox = (idx % COLS) * PW
    const oy = LEGEND + Math.floor(idx / COLS) * PH
    const iw = PW - ML - MR
    const ih = PH - MT - MB
    const pts = systems.map(s => depths.map(d => {
      const smp = find(res, s, d, k.workload, k.temp)
      if (smp === undefined) return undefined
      if (smp.seconds !== null && smp.seconds > 0) return { d, v: smp.seconds, hollow: smp.timedOut === true }
      if (smp.timedOut === true) return { d, v: res.meta.timeoutSeconds, hollow: true }
      return undefined
    }))
    const vals = pts.flat().filter(p => p !== undefined).map(p => p.v)
    out.push(`<g transform="translate(${ox},${oy})">`)
    out.push(`<text x="${ML}" y="18" font-weight="bold">${esc(k.label)}</text>`)
    out.push(`<rect x="${ML}" y="${MT}" width="${iw}" height="${ih}" fill="none" stroke="#bbb"/>`)
    if (vals.length === 0) {
      out.push(`<text x="${ML + 10}" y="${MT + 20}" fill="#999">no data</text></g>`)
      return
    }
    let lo = Math.floor(Math.log10(Math.min(...vals)))
    let hi = Math.ceil(Math.log10(Math.max(...vals)))
    if (hi <= lo) hi = lo + 1
    if (hi - lo > 7) lo = hi - 7
    const x = (d: number): number => dMax === dMin ? ML + iw / 2 : ML + ((Math.log2(d) - dMin) / (dMax - dMin)) * iw
    const y = (v: number): number => MT + ih - ((Math.log10(Math.max(v, Math.pow(10, lo))) - lo) / (hi - lo)) * ih
    for (let e = lo; e <= hi; e++) {
      const yy = y(Math.pow(10, e)).toFixed(1)
      out.push(`<line x1="${ML}" y1="${yy}" x2="${ML + iw}" y2="${yy}" stroke="#e4e4e4"/>`)
      out.push(`<text x="${ML - 4}" y="${(+yy + 4).toFixed(1)}" text-anchor="end" fill="#555">${tickLabel(e)}</text>`)
    }
    for (const d of depths) {
      const xx = x(d).toFixed(1)
      out.push(`<line x1="${xx}" y1="${MT}" x2="${xx}" y2="${MT + ih}" stroke="#f0f0f0"/>`)
      out.push(`<text x="${xx}" y="${MT + ih + 14}" text-anchor="middle" fill="#555">${d}</text>`)
    }
    out.push(`<text x="${ML + iw / 2}" y="${PH - 6}" text-anchor="middle" fill="#777">layer depth</text>`)
    systems.forEach((s, i) => {
      const line = pts[i].filter(p => p !== undefined)
      if (line.length === 0) return
      const c = color(s, i)
      const dash = DASHED.has(s) ? ' stroke-dasharray="5,3"' : ''
      if (line.length > 1) {
        const dpath = line.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.d).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ')
        out.push(`<path d="${dpath}" fill="none" stroke="${c}" stroke-width="1.8"${dash}/>`)
      }
      for (const p of line) {
        const fill = p.hollow ? 'white' : c
        out.push(`<circle cx="${x(p.d).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3" fill="${fill}" stroke="${c}" stroke-width="1.3"><title>${esc(`${s}, depth ${p.d}: ${p.hollow ? '>' : ''}${p.v.toPrecision(3)} s`)}</title></circle>`)
      }
    })
    out.push('</g>')
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
