/**
 * The bench's command line: its two presets (full and quick) and the
 * options that override them, parsed into one Config (bench/run.ts runs it).
 */
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { SYSTEM_NAMES, type SystemName } from './systems'
import { scaledTree, type TreeParams } from './tree'
import { WORKLOADS, WORKLOAD_IDS, type Workload } from './workloads'

/** The checkout this bench belongs to (from dist/bench/). */
export const REPO = path.resolve(__dirname, '..', '..')

/**
 * The two modes. The full matrix with issue 3's 20k-file tree (FULL_TREE,
 * `--files 20000`) takes about an hour on a 2-core VM: the FUSE peers and
 * cache=off need tens of seconds per cold walk at depth 64 and 128. To
 * stay under 20 minutes on a busy 2-core machine the full mode uses a
 * fifth of it (4k files in 200 directories; the writes scale alike; the
 * every-layer directory keeps 500 entries, the big file 256 MiB), a 15 s
 * limit per run, and repeats only warm runs under a second. Quick: 2k files, depths 1 and 16,
 * without cache=off (its cold walks alone take minutes), 8 s limit.
 */
interface Preset {
  files: number
  bigMiB: number
  depths: number[]
  systems: SystemName[]
  reps: number
  coldReps: number
  warmBudgetS: number
  timeoutS: number
}

const FULL: Preset = {
  files: 4000,
  bigMiB: 256,
  depths: [1, 4, 16, 64, 128],
  systems: SYSTEM_NAMES.filter(s => s !== 'unionfs-ts-noxattr'),
  reps: 3,
  coldReps: 1,
  warmBudgetS: 6,
  timeoutS: 15
}

const QUICK: Preset = {
  files: 2000,
  bigMiB: 64,
  depths: [1, 16],
  systems: SYSTEM_NAMES.filter(s => s !== 'unionfs-ts-nocache' && s !== 'unionfs-ts-noxattr'),
  reps: 2,
  coldReps: 1,
  warmBudgetS: 3,
  timeoutS: 8
}

export const USAGE = `usage: npm run bench -- [OPTIONS]     (as root)

  --quick            2k files, depths 1 and 16, no cache=off, 8 s limit:
                     under 3 minutes (default: the full mode, 4k files,
                     depths 1 to 128, every system, 15 s limit: under 20)
  --dir DIR          where trees, mounts and scratch go (default /var/tmp/unionfs-ts-bench)
  --out DIR          where results go (default bench/results)
  --name NAME        results file name stem (default: full or quick)
  --depths 1,4,16    layer depths
  --systems a,b      of: ${SYSTEM_NAMES.join(', ')}
  --workloads a,b    of: ${WORKLOAD_IDS.join(', ')}
  --files N          small files in the tree (the other counts scale with it;
                     20000 is issue 3's tree)
  --big-mib N        size of the big file
  --reps N           warm repetitions (the median is reported)
  --cold-reps N      cold runs of each read workload, each on a fresh
                     mount, and rounds of the writes, each on fresh
                     writable branches (the median is reported; default
                     1): a cold run's time swings with the disk and the
                     scheduler far more than a warm one's
  --timeout S        time limit of one workload run
  --no-install       do not install missing peers with apt-get
  --unionfs-ts BIN   the unionfs-ts command (default bin/unionfs-ts.js of this checkout)
  --report FILE      print the tables of a saved NAME.json and redraw its
                     plot and CSV beside it (no root needed)
`

export interface Config {
  mode: string
  name: string
  dir: string
  out: string
  depths: number[]
  systems: SystemName[]
  workloads: Workload[]
  params: TreeParams
  reps: number
  /** Cold runs per system and workload, each on a mount of its own. */
  coldReps: number
  /** Warm repetitions stop once they have taken this long together. */
  warmBudgetS: number
  timeoutS: number
  install: boolean
  bin: string
  /** --report FILE: print and re-plot saved results instead of running. */
  report?: string
}

function list (s: string | undefined): string[] | undefined {
  return s === undefined ? undefined : s.split(',').map(x => x.trim()).filter(x => x !== '')
}

export function parseConfig (argv: string[]): Config | undefined {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      dir: { type: 'string' },
      out: { type: 'string' },
      name: { type: 'string' },
      depths: { type: 'string' },
      systems: { type: 'string' },
      workloads: { type: 'string' },
      files: { type: 'string' },
      'big-mib': { type: 'string' },
      reps: { type: 'string' },
      'cold-reps': { type: 'string' },
      timeout: { type: 'string' },
      'no-install': { type: 'boolean' },
      'unionfs-ts': { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (v.help === true) {
    process.stdout.write(USAGE)
    return undefined
  }
  const quick = v.quick === true
  const num = (s: string | undefined, dflt: number, what: string): number => {
    if (s === undefined) return dflt
    const n = Number(s)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what}: expected a positive number, got '${s}'`)
    return n
  }
  const preset = quick ? QUICK : FULL
  const files = num(v.files, preset.files, 'files')
  const bigMiB = num(v['big-mib'], preset.bigMiB, 'big-mib')
  const systems = (list(v.systems) ?? preset.systems) as SystemName[]
  for (const s of systems) if (!SYSTEM_NAMES.includes(s)) throw new Error(`--systems: unknown system '${s}'`)
  const wl = list(v.workloads) ?? WORKLOAD_IDS
  for (const w of wl) if (!WORKLOAD_IDS.includes(w)) throw new Error(`--workloads: unknown workload '${w}'`)
  const depths = (list(v.depths)?.map(d => num(d, 1, 'depths')) ?? preset.depths)
  const mode = quick ? 'quick' : 'full'
  return {
    mode,
    name: v.name ?? mode,
    dir: path.resolve(v.dir ?? '/var/tmp/unionfs-ts-bench'),
    out: path.resolve(v.out ?? path.join(REPO, 'bench', 'results')),
    depths: [...new Set(depths.map(Math.round))].sort((a, b) => a - b),
    systems: SYSTEM_NAMES.filter(s => systems.includes(s)),
    workloads: WORKLOADS.filter(w => wl.includes(w.id)),
    params: scaledTree(Math.round(files), Math.round(bigMiB)),
    reps: Math.round(num(v.reps, preset.reps, 'reps')),
    coldReps: Math.round(num(v['cold-reps'], preset.coldReps, 'cold-reps')),
    warmBudgetS: preset.warmBudgetS,
    timeoutS: num(v.timeout, preset.timeoutS, 'timeout'),
    install: v['no-install'] !== true,
    bin: path.resolve(v['unionfs-ts'] ?? path.join(REPO, 'bin', 'unionfs-ts.js')),
    ...(v.report !== undefined ? { report: path.resolve(v.report) } : {})
  }
}
