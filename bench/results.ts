/**
 * What a run records, and its text forms: the tables printed to stdout and
 * the CSV. The JSON written next to them is `Results` as is.
 *
 * A sample is one (system, depth, workload, temperature): `seconds` is the
 * median of `runs`, null when nothing finished. `daemonCpu` is the FUSE
 * daemon's user+system CPU during the median run. A mount record is one
 * mount's life: the daemon's total CPU and peak RSS (VmHWM) read just
 * before unmounting.
 */
import type { Temp } from './workloads'

export interface Sample {
  system: string
  depth: number
  workload: string
  temp: Temp
  seconds: number | null
  runs: number[]
  daemonCpu?: number
  check?: number
  expected?: number
  /** false: the check disagreed with the view or with native's. */
  checkOk?: boolean
  error?: string
  timedOut?: boolean
  /** Page-cache drops by others during the runs (see proc.cacheDrops): a warm run with one was partly cold. */
  drops?: number
  /** Not run: why (it went over the limit at a shallower depth). */
  skipped?: string
}

export interface MountRecord {
  system: string
  depth: number
  /** The workload, or 'writes' for the mount that ran all the writes. */
  group: string
  pid?: number
  mountSeconds: number
  cpuSeconds?: number
  peakRssKiB?: number
  /** The 1-minute load average when mounted: other work on the machine skews timings. */
  load1?: number
  /** Share of the last 10 s in which some task waited for a CPU (PSI cpu some avg10), in percent. */
  cpuPressure?: number
  error?: string
}

export interface Results {
  meta: {
    started: string
    finished?: string
    mode: string
    command: string
    host: Record<string, string>
    params: object
    depths: number[]
    systems: Record<string, string>
    skipped: Record<string, string>
    workloads: Record<string, string>
    timeoutSeconds: number
    warmReps: number
    /** Cold runs per sample, each on a fresh mount (absent in results from before the option: 1). */
    coldReps?: number
    notes: string[]
  }
  samples: Sample[]
  mounts: MountRecord[]
}

export function median (xs: readonly number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Three significant digits, no exponent for the range a bench sees. */
export function fmtSeconds (s: number): string {
  if (s >= 100) return s.toFixed(0)
  if (s >= 10) return s.toFixed(1)
  if (s >= 1) return s.toFixed(2)
  if (s >= 0.1) return s.toFixed(3)
  if (s >= 0.01) return s.toFixed(4)
  if (s >= 0.001) return s.toFixed(5)
  return s.toExponential(1)
}

function fmtRatio (r: number): string {
  if (r >= 100) return `${r.toFixed(0)}x`
  if (r >= 10) return `${r.toFixed(1)}x`
  return `${r.toFixed(2)}x`
}

export function find (res: Results, system: string, depth: number, workload: string, temp: Temp): Sample | undefined {
  return res.samples.find(s => s.system === system && s.depth === depth && s.workload === workload && s.temp === temp)
}

/** The text of one cell: seconds and ratio to native, or why there is none. */
function cell (res: Results, s: Sample | undefined, native: Sample | undefined): string {
  if (s === undefined) return '-'
  if (s.seconds === null) return s.timedOut === true ? `>${res.meta.timeoutSeconds}s` : 'error'
  let t = fmtSeconds(s.seconds)
  if (s.timedOut === true) t = `>${t}`
  if (s.system !== 'native' && native?.seconds != null && native.seconds > 0) t += ` ${fmtRatio(s.seconds / native.seconds)}`
  if (s.checkOk === false || s.error !== undefined) t += ' !'
  return t
}

function pad (s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

function padLeft (s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s
}

export function rowKeys (res: Results): Array<{ workload: string, temp: Temp, label: string }> {
  const keys: Array<{ workload: string, temp: Temp, label: string }> = []
  for (const [id, title] of Object.entries(res.meta.workloads)) {
    for (const temp of ['cold', 'warm'] as const) {
      if (res.samples.some(s => s.workload === id && s.temp === temp)) keys.push({ workload: id, temp, label: `${title}, ${temp}` })
    }
  }
  return keys
}

export function systemsOf (res: Results): string[] {
  return Object.keys(res.meta.systems).filter(n => res.samples.some(s => s.system === n))
}

/** The seconds table for one depth, with ratios to native. */
export function depthTable (res: Results, depth: number): string {
  const systems = systemsOf(res)
  const keys = rowKeys(res)
  const w0 = Math.max(8, ...keys.map(k => k.label.length)) + 2
  const w = Math.max(14, ...systems.map(s => s.length + 2))
  const lines: string[] = []
  lines.push(`depth ${depth}: seconds (ratio to native); ! = error or wrong result; >Ns = over the time limit (or over it at a shallower depth, so not run)`)
  lines.push(pad('workload', w0) + systems.map(s => padLeft(s, w)).join(''))
  for (const k of keys) {
    const native = find(res, 'native', depth, k.workload, k.temp)
    const cells = systems.map(s => padLeft(cell(res, find(res, s, depth, k.workload, k.temp), native), w))
    if (cells.every(c => c.trim() === '-')) continue
    lines.push(pad(k.label, w0) + cells.join(''))
  }
  return lines.join('\n')
}

/** The FUSE daemons' CPU time (summed over the depth's mounts) and peak RSS (largest). */
export function daemonTable (res: Results): string {
  const systems = systemsOf(res).filter(s => res.mounts.some(m => m.system === s && m.peakRssKiB !== undefined))
  if (systems.length === 0) return ''
  const w = Math.max(20, ...systems.map(s => s.length + 2))
  const lines = ['FUSE daemons: CPU seconds over all workloads at that depth / largest peak RSS (MiB)']
  lines.push(pad('depth', 8) + systems.map(s => padLeft(s, w)).join(''))
  for (const depth of res.meta.depths) {
    const cells = systems.map(s => {
      const ms = res.mounts.filter(m => m.system === s && m.depth === depth)
      if (ms.length === 0) return padLeft('-', w)
      const cpu = ms.reduce((a, m) => a + (m.cpuSeconds ?? 0), 0)
      const rss = Math.max(...ms.map(m => m.peakRssKiB ?? 0)) / 1024
      return padLeft(`${cpu.toFixed(1)} s / ${rss.toFixed(0)} MiB`, w)
    })
    lines.push(pad(String(depth), 8) + cells.join(''))
  }
  return lines.join('\n')
}

function csvField (v: unknown): string {
  if (v === undefined || v === null) return ''
  const s = String(v)
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function samplesCsv (res: Results): string {
  const head = ['system', 'depth', 'workload', 'temp', 'seconds', 'ratio_to_native', 'runs', 'daemon_cpu_s', 'check', 'expected', 'check_ok', 'timed_out', 'drops', 'skipped', 'error']
  const rows = res.samples.map(s => {
    const native = find(res, 'native', s.depth, s.workload, s.temp)
    const ratio = s.seconds !== null && native?.seconds != null && native.seconds > 0 ? (s.seconds / native.seconds).toFixed(3) : ''
    return [s.system, s.depth, s.workload, s.temp, s.seconds, ratio, s.runs.map(r => r.toFixed(6)).join(' '),
      s.daemonCpu, s.check, s.expected, s.checkOk, s.timedOut, s.drops, s.skipped, s.error].map(csvField).join(',')
  })
  return [head.join(','), ...rows].join('\n') + '\n'
}

export function mountsCsv (res: Results): string {
  const head = ['system', 'depth', 'group', 'pid', 'mount_s', 'daemon_cpu_s', 'peak_rss_kib', 'load1', 'cpu_pressure', 'error']
  const rows = res.mounts.map(m => [m.system, m.depth, m.group, m.pid, m.mountSeconds.toFixed(3), m.cpuSeconds, m.peakRssKiB, m.load1, m.cpuPressure, m.error].map(csvField).join(','))
  return [head.join(','), ...rows].join('\n') + '\n'
}

/** How busy the machine was: numbers from a run on a loaded machine are worth less. */
export function environmentText (res: Results): string {
  const psi = res.mounts.map(m => m.cpuPressure).filter((x): x is number => x !== undefined)
  const drops = res.samples.reduce((a, s) => a + (s.drops ?? 0), 0)
  const disturbed = res.samples.filter(s => s.temp === 'warm' && (s.drops ?? 0) > 0).length
  const warm = res.samples.filter(s => s.temp === 'warm' && s.seconds !== null).length
  const lines = ['the machine during the run:']
  if (psi.length > 0) {
    lines.push(`  CPU pressure when mounting (PSI some avg10): median ${median(psi)?.toFixed(0) ?? '?'}%, max ${Math.max(...psi).toFixed(0)}%` +
      ' (near 0 on an idle machine; high means other work competed for the CPUs)')
  }
  lines.push(`  page-cache drops by others while workloads ran: ${drops}; warm samples with at least one: ${disturbed} of ${warm}`)
  return lines.join('\n')
}

/** Everything printed at the end of a run (or by --report from a saved JSON). */
export function reportText (res: Results): string {
  const p = res.meta.params as { files?: number, dirs?: number, bigBytes?: number }
  const m = res.meta
  const parts: string[] = []
  const took = m.finished !== undefined ? `; took ${Math.round((Date.parse(m.finished) - Date.parse(m.started)) / 1000)} s` : ''
  const coldReps = m.coldReps ?? 1
  parts.push(`unionfs-ts bench, ${m.mode} mode: ${p.files ?? '?'} files in ${p.dirs ?? '?'} dirs, big file ${(p.bigBytes ?? 0) / 2 ** 20} MiB; ` +
    `${coldReps > 1 ? `cold = median of ${coldReps} mounts; ` : ''}warm = median of up to ${m.warmReps}; limit ${m.timeoutSeconds} s a run; ${m.started}${took}`)
  for (const [n, v] of Object.entries(m.systems)) parts.push(`  ${n}: ${v}`)
  for (const [n, v] of Object.entries(m.skipped)) parts.push(`  ${n}: skipped, ${v}`)
  for (const d of m.depths) parts.push('', depthTable(res, d))
  const dt = daemonTable(res)
  if (dt !== '') parts.push('', dt)
  parts.push('', environmentText(res))
  for (const n of m.notes) parts.push(`  ${n}`)
  const over = res.samples.filter(s => s.skipped === undefined && s.timedOut === true)
  if (over.length > 0) {
    parts.push('', `over the ${m.timeoutSeconds} s limit (deeper depths of these were not run):`)
    parts.push('  ' + over.map(s => `${s.system} d${s.depth} ${s.workload} ${s.temp}`).join(', '))
  }
  const bad = res.samples.filter(s => s.skipped === undefined && s.timedOut !== true && (s.error !== undefined || s.checkOk === false))
  if (bad.length > 0) {
    parts.push('', 'errors and wrong results:')
    for (const s of bad) {
      const what = s.error ?? `check ${String(s.check)} != expected ${String(s.expected)}`
      parts.push(`  ${s.system} d${s.depth} ${s.workload} ${s.temp}: ${what}`)
    }
  }
  return parts.join('\n') + '\n'
}
