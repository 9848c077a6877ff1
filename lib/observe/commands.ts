/**
 * `unionfs-ts inspect [--json] PATH` and `unionfs-ts stats [--json] MNT`:
 * argv -> the daemon's answer (channel.ts) -> text or JSON on stdout.
 * Colour only on a terminal (and never with NO_COLOR set); plain text when
 * piped; `--json` prints the same data as one JSON document for scripts.
 */
import { styleText } from 'node:util'
import { ask } from './channel'
import type { MountConfig, MountStats } from './daemon'
import { inspectPath, locate, type Inspection } from './inspect'

export const OBSERVE_USAGE = `Seeing copy-on-write happen:
  unionfs-ts inspect [--json] PATH   the lookup walk of PATH (inside a mount),
                                     branch by branch, top first; for a
                                     directory, the branch of each entry
  unionfs-ts stats [--json] MNT      live counters of a running mount:
                                     requests by kind, dentry cache, copy-ups,
                                     bytes copied, whiteouts
  (-o trace[=FILE] on mount logs every copy-up, whiteout, opaque mark and
  rename as it happens)
`

type Style = Parameters<typeof styleText>[0]

function painter (colour: boolean): (style: Style, s: string) => string {
  return colour ? (style, s) => styleText(style, s) : (_style, s) => s
}

function useColour (): boolean {
  return process.stdout.isTTY === true && (process.env.NO_COLOR ?? '') === '' && process.env.TERM !== 'dumb'
}

/** The config of the mount `given` is in, and the union path. */
export async function inspect (given: string): Promise<Inspection> {
  const { mountpoint, unionPath } = locate(given)
  const config = await ask(mountpoint, 'config') as MountConfig
  return inspectPath(config, unionPath)
}

/** Live counters of the mount `given` is in (or is). */
export async function stats (given: string): Promise<MountStats> {
  const { mountpoint } = locate(given)
  return await ask(mountpoint, 'stats') as MountStats
}

const ROLE_STYLE: Record<string, Style> = {
  serves: ['bold', 'green'], merged: 'green', hides: ['bold', 'red'], hidden: 'yellow', nothing: 'dim', unreached: 'dim'
}

export function formatInspection (r: Inspection, colour = false): string {
  const c = painter(colour)
  const lines: string[] = []
  lines.push(`${c('bold', r.path)}  in ${r.mountpoint} (${r.walk.length} branch${r.walk.length === 1 ? '' : 'es'}, top first; whiteouts written as ${r.whiteoutDialect})`)
  const wBranch = Math.max(...r.walk.map(w => w.branch.length), 6)
  for (const w of r.walk) {
    let holds: string = w.holds
    if (w.holds === 'whiteout') holds = `whiteout (${w.whiteoutForm === 'aufs' ? '.wh.' + r.path.split('/').pop()! : 'char 0/0'})`
    if (w.opaque === true) holds += ', opaque'
    if (w.redirect !== undefined) holds += `, redirect ${w.redirect}`
    const role = c(ROLE_STYLE[w.role] ?? 'reset', w.role.padEnd(9))
    lines.push(`  layer ${String(w.layer).padStart(2)} ${w.writable ? 'rw' : 'ro'}  ${w.branch.padEnd(wBranch)}  ${role}  ${holds}`)
  }
  if (!r.exists) {
    lines.push(`=> ${c(['bold', 'red'], 'not in the union')}: ${r.why ?? ''}`)
  } else {
    const sb = r.servedBy!
    let verdict = `=> ${r.type ?? ''} served by layer ${sb.layer} (${sb.branch})`
    if (r.copiedUp) verdict += c(['bold', 'magenta'], `, copied up${r.copiedFrom === undefined ? '' : ` from layer ${r.copiedFrom.layer} (${r.copiedFrom.branch})`}`)
    else if (sb.layer === 0 && r.walk[0]?.writable && r.path !== '/') verdict += ' (made there, not copied up)'
    if (r.mergedFrom !== undefined && r.mergedFrom.length > 1) verdict += `; merged from layers ${r.mergedFrom.join(', ')}`
    lines.push(verdict)
  }
  if (r.entries !== undefined) {
    lines.push(r.entries.length === 0 ? 'entries: none' : 'entries (name, type, from):')
    const wName = Math.max(...r.entries.map(e => e.name.length), 4)
    for (const e of r.entries) {
      let from = `layer ${e.layer} (${e.branch})`
      if (e.mergedFrom !== undefined && e.mergedFrom.length > 1) from += `, merged from layers ${e.mergedFrom.join(', ')}`
      if (e.copiedUp === true) from += c('magenta', ', copied up')
      lines.push(`  ${e.name.padEnd(wName)}  ${e.type.padEnd(7)}  ${from}`)
    }
  }
  if (r.whiteouts !== undefined && r.whiteouts.length > 0) {
    lines.push('hidden by whiteouts: ' + r.whiteouts.map(w => `${w.name} (layer ${w.layer})`).join(', '))
  }
  return lines.join('\n') + '\n'
}

function bytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return `${v.toFixed(1)} ${units[u]} (${n} bytes)`
}

export function formatStats (s: MountStats, colour = false): string {
  const c = painter(colour)
  const d = s.dentryCache
  const lookups = d.hits + d.misses + d.negativeHits
  const pct = (n: number): string => lookups === 0 ? '' : ` (${(100 * n / lookups).toFixed(1)}%)`
  const kinds = Object.entries(s.requests.byKind).sort((a, b) => b[1] - a[1])
  const lines = [
    `${c('bold', s.mountpoint)}  daemon pid ${s.pid}, up ${s.uptimeSeconds} s`,
    `requests:     ${s.requests.total}`,
    ...kinds.map(([k, n]) => `  ${k.toLowerCase().padEnd(12)}${String(n).padStart(10)}${k === 'READ' && s.requests.splicedReads !== undefined ? ` (${s.requests.splicedReads} spliced)` : ''}`),
    `dentry cache: ${d.hits} hits${pct(d.hits)}, ${d.negativeHits} negative hits${pct(d.negativeHits)}, ${d.misses} misses${pct(d.misses)}; ${d.size}/${d.capacity} entries`,
    `copy-ups:     ${c(s.copyUps > 0 ? 'magenta' : 'reset', String(s.copyUps))}, ${bytes(s.bytesCopied)} copied`,
    `whiteouts:    ${s.whiteouts} made, ${s.opaques} opaque directories made`,
    `renames:      ${s.renames}`,
    `kernel holds: ${s.kernel.nodes} nodes, ${s.kernel.openFiles} open files, ${s.kernel.openDirs} open directories`
  ]
  return lines.join('\n') + '\n'
}

function oneLine (err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]
}

/** `inspect` and `stats`; resolves to the exit status. */
export async function runObserveCommand (cmd: 'inspect' | 'stats', args: readonly string[]): Promise<number> {
  const json = args.includes('--json')
  const rest = args.filter(a => a !== '--json')
  const what = cmd === 'inspect' ? 'PATH' : 'MOUNTPOINT'
  const unknown = rest.find(a => a.startsWith('-') && a !== '-')
  if (unknown !== undefined || rest.length !== 1) {
    process.stderr.write(`unionfs-ts: ${cmd}: ${unknown !== undefined ? `unknown option '${unknown}'` : rest.length === 0 ? `missing ${what}` : `unexpected argument '${rest[1]}'`} (usage: unionfs-ts ${cmd} [--json] ${what})\n`)
    return 1
  }
  try {
    if (cmd === 'inspect') {
      const r = await inspect(rest[0])
      process.stdout.write(json ? JSON.stringify(r, null, 2) + '\n' : formatInspection(r, useColour()))
    } else {
      const s = await stats(rest[0])
      process.stdout.write(json ? JSON.stringify(s, null, 2) + '\n' : formatStats(s, useColour()))
    }
    return 0
  } catch (err) {
    process.stderr.write(`unionfs-ts: ${cmd}: ${oneLine(err)}\n`)
    return 1
  }
}
