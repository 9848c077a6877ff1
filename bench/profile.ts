/**
 * Where unionfs-ts spends a workload's time: `node dist/bench/profile.js`.
 *
 *   node dist/bench/profile.js [--workload lstat] [--depth 64] [--files 4000]
 *        [--cache off] [-o MOUNT_OPTIONS] [--cpu-prof] [--syscalls] [--dir DIR]
 *
 * On the bench's own cached tree (the full mode's by default), one workload,
 * cold then (reads only) warm:
 *  1. FUSE requests by opcode: a mount with `-o debug,log=FILE` logs one
 *     line per request; the log is cut at the workload's start and end and
 *     the `<-` lines counted. Logging slows the daemon: those runs' times
 *     are not the bench's.
 *  2. --syscalls: `strace -c -f` attached to that daemon for each run: the
 *     system calls the requests turned into (per-layer probes show here).
 *  3. --cpu-prof: a second mount served by a daemon we start in the
 *     foreground under `node --cpu-prof`, without debug logging; after
 *     unmounting, each thread's profile (the main thread's, then the
 *     serving thread's) has its self time summed by function and by
 *     source file.
 * Each mount is unmounted in a `finally`; only processes started here are
 * signalled, by PID.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { cpuSeconds, dropCaches, isAlive, killGroup, mountedType, run, sleep, startDaemon, waitFor } from './proc'
import { unionfsTsPid } from './systems'
import { BIG_FILE, buildLayers, buildView, scaledTree, type BuiltLayers, type BuiltView } from './tree'
import { WORKLOADS, type Workload, type WorkloadCtx } from './workloads'

const REPO = path.resolve(__dirname, '..', '..')
const BIN = path.join(REPO, 'bin', 'unionfs-ts.js')

interface Opts {
  workload: Workload
  depth: number
  files: number
  cacheOff: boolean
  cpuProf: boolean
  syscalls: boolean
  /** Extra -o options for both mounts. */
  options: string[]
  dir: string
  timeoutS: number
}

function log (s: string): void {
  process.stderr.write(`[profile] ${s}\n`)
}

interface Phase { temp: 'cold' | 'warm', seconds: number, cpu?: number, requests: Map<string, number>, syscalls?: string }

function countRequests (text: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const m of text.matchAll(/ <- \d+ ([A-Z_0-9]+) /g)) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1)
  return counts
}

function readFrom (file: string, offset: number): string {
  const fd = fs.openSync(file, 'r')
  try {
    const size = fs.fstatSync(fd).size
    const buf = Buffer.alloc(Math.max(0, size - offset))
    fs.readSync(fd, buf, 0, buf.length, offset)
    return buf.toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

function sizeOf (file: string): number {
  try { return fs.statSync(file).size } catch { return 0 }
}

/** strace -c -f on `pid` while `body` runs; the summary goes to `out`. */
async function withStrace<T> (pid: number, out: string, body: () => Promise<T>): Promise<T> {
  fs.rmSync(out, { force: true })
  const st = startDaemon('strace', ['-c', '-f', '-o', out, '-p', String(pid)], `${out}.log`)
  await sleep(500)
  try {
    return await body()
  } finally {
    killGroup(st.pid, 'SIGINT')
    await Promise.race([st.exited, sleep(10_000)])
    if (isAlive(st.pid)) killGroup(st.pid)
  }
}

function branches (layers: BuiltLayers, upper: string): string {
  return [upper, ...layers.layers].join(':')
}

function ctxFor (mnt: string, view: BuiltView, layers: BuiltLayers, o: Opts): WorkloadCtx {
  return {
    mnt,
    view,
    layers,
    worker: path.join(__dirname, 'worker.js'),
    timeoutMs: o.timeoutS * 1000,
    bigMiB: view.view.params.bigBytes >> 20,
    bigSource: path.join(layers.layers[layers.layers.length - 1], BIG_FILE)
  }
}

async function requestCounts (o: Opts, view: BuiltView, layers: BuiltLayers, work: string): Promise<Phase[]> {
  const upper = path.join(work, 'upper-requests')
  const mnt = path.join(work, 'mnt')
  const logFile = path.join(work, 'debug.log')
  fs.rmSync(upper, { recursive: true, force: true })
  fs.rmSync(logFile, { force: true })
  fs.mkdirSync(upper, { recursive: true })
  fs.mkdirSync(mnt, { recursive: true })
  const opts = ['debug', `log=${logFile}`, ...(o.cacheOff ? ['cache=off'] : []), ...o.options].join(',')
  const r = await run(process.execPath, [BIN, 'mount', '-o', opts, branches(layers, upper), mnt], { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`mount: ${r.stderr.trim()}`)
  const pid = unionfsTsPid(fs.realpathSync(mnt))
  const phases: Phase[] = []
  try {
    const ctx = ctxFor(mnt, view, layers, o)
    dropCaches()
    // A write changes the tree: a second run would measure something else.
    const temps = o.workload.kind === 'write' ? ['cold'] as const : ['cold', 'warm'] as const
    for (const temp of temps) {
      const at = sizeOf(logFile)
      const c0 = pid !== undefined ? cpuSeconds(pid) : undefined
      let seconds = 0
      let syscalls: string | undefined
      if (o.syscalls && pid !== undefined) {
        const out = path.join(work, `strace-${temp}.txt`)
        await withStrace(pid, out, async () => { seconds = (await o.workload.run(ctx)).seconds })
        syscalls = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : undefined
      } else {
        seconds = (await o.workload.run(ctx)).seconds
      }
      const c1 = pid !== undefined ? cpuSeconds(pid) : undefined
      await sleep(200)
      phases.push({
        temp,
        seconds,
        ...(c0 !== undefined && c1 !== undefined ? { cpu: c1 - c0 } : {}),
        requests: countRequests(readFrom(logFile, at)),
        ...(syscalls !== undefined ? { syscalls } : {})
      })
    }
  } finally {
    await run(process.execPath, [BIN, 'umount', mnt], { timeoutMs: 60_000 })
    if (mountedType(fs.realpathSync(mnt)) !== undefined) await run('umount', ['-l', mnt], { timeoutMs: 30_000 })
  }
  return phases
}

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

async function cpuProfile (o: Opts, view: BuiltView, layers: BuiltLayers, work: string): Promise<{ files: string[], seconds: number[] }> {
  const upper = path.join(work, 'upper-profile')
  const mnt = fs.realpathSync(path.join(work, 'mnt'))
  const profDir = path.join(work, 'cpu-prof')
  fs.rmSync(upper, { recursive: true, force: true })
  fs.rmSync(profDir, { recursive: true, force: true })
  fs.mkdirSync(upper, { recursive: true })
  fs.mkdirSync(profDir, { recursive: true })
  const args = ['--cpu-prof', '--cpu-prof-dir', profDir, BIN, 'mount', '-f',
    '-o', ['log=' + path.join(work, 'profile-daemon.log'), ...(o.cacheOff ? ['cache=off'] : []), ...o.options].join(','),
    branches(layers, upper), mnt]
  const d = startDaemon(process.execPath, args, path.join(work, 'profile-daemon.log'))
  const seconds: number[] = []
  try {
    if (!await waitFor(() => mountedType(mnt) === 'fuse.unionfs-ts' || !isAlive(d.pid), 30_000) || mountedType(mnt) === undefined) {
      throw new Error('the profiled daemon did not mount')
    }
    const ctx = ctxFor(mnt, view, layers, o)
    dropCaches()
    for (let i = 0; i < (o.workload.kind === 'write' ? 1 : 2); i++) seconds.push((await o.workload.run(ctx)).seconds)
  } finally {
    await run('umount', [mnt], { timeoutMs: 60_000 })
    await Promise.race([d.exited, sleep(20_000)])
    if (isAlive(d.pid)) killGroup(d.pid)
  }
  // One profile per JS thread: the main thread's, then the serving thread's.
  const files = fs.readdirSync(profDir).filter(n => n.endsWith('.cpuprofile')).sort().map(n => path.join(profDir, n))
  if (files.length === 0) throw new Error(`no profile in ${profDir}`)
  return { files, seconds }
}

function summarizeProfile (file: string, top = 25): string {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile
  const self = new Map<number, number>()
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
  const byFn = new Map<string, number>()
  const byFile = new Map<string, number>()
  let total = 0
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0
    if (us === 0) continue
    total += us
    const url = n.callFrame.url.replace(/^file:\/\//, '').replace(REPO + '/', '')
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${url !== '' ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim()
    byFn.set(fn, (byFn.get(fn) ?? 0) + us)
    const f = url === '' ? `(${n.callFrame.functionName})` : url
    byFile.set(f, (byFile.get(f) ?? 0) + us)
  }
  const table = (m: Map<string, number>): string => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, us]) => `  ${(us / 1e6).toFixed(3).padStart(8)} s ${(100 * us / total).toFixed(1).padStart(5)}%  ${k}`).join('\n')
  return `self time ${(total / 1e6).toFixed(2)} s in this thread (idle included as (idle))\nby function:\n${table(byFn)}\nby file:\n${table(byFile)}`
}

async function main (): Promise<number> {
  const { values: v } = parseArgs({
    options: {
      workload: { type: 'string' },
      depth: { type: 'string' },
      files: { type: 'string' },
      cache: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      syscalls: { type: 'boolean' },
      options: { type: 'string', short: 'o' },
      dir: { type: 'string' },
      timeout: { type: 'string' }
    }
  })
  const workload = WORKLOADS.find(w => w.id === (v.workload ?? 'lstat'))
  if (workload === undefined) {
    process.stderr.write(`unknown workload; one of ${WORKLOADS.map(w => w.id).join(', ')}\n`)
    return 2
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('profile: must run as root (mounts, drop_caches)\n')
    return 1
  }
  const o: Opts = {
    workload,
    depth: Number(v.depth ?? 64),
    files: Number(v.files ?? 4000),
    cacheOff: v.cache === 'off',
    cpuProf: v['cpu-prof'] === true,
    syscalls: v.syscalls === true,
    options: (v.options ?? '').split(',').filter(x => x !== ''),
    dir: path.resolve(v.dir ?? '/var/tmp/unionfs-ts-bench'),
    timeoutS: Number(v.timeout ?? 300)
  }
  const params = scaledTree(o.files, 256)
  const treeRoot = path.join(o.dir, 'trees')
  fs.mkdirSync(treeRoot, { recursive: true })
  const view = buildView(treeRoot, params, log)
  const layers = buildLayers(treeRoot, params, o.depth, log)
  const work = path.join(o.dir, 'profile')
  fs.mkdirSync(work, { recursive: true })
  const shown = [...(o.cacheOff ? ['cache=off'] : []), ...o.options]
  const out: string[] = [`unionfs-ts${shown.length > 0 ? ` -o ${shown.join(',')}` : ''}: ${workload.title}, depth ${o.depth}, ${o.files} files`]
  const phases = await requestCounts(o, view, layers, work)
  const ops = [...new Set(phases.flatMap(p => [...p.requests.keys()]))]
  ops.sort((a, b) => (phases[0].requests.get(b) ?? 0) - (phases[0].requests.get(a) ?? 0))
  out.push('', 'FUSE requests (debug-logged mount; its times include the logging):')
  out.push(`  ${'op'.padEnd(14)}${phases.map(p => p.temp.padStart(10)).join('')}`)
  for (const op of ops) out.push(`  ${op.padEnd(14)}${phases.map(p => String(p.requests.get(op) ?? 0).padStart(10)).join('')}`)
  const totals = phases.map(p => [...p.requests.values()].reduce((a, b) => a + b, 0))
  out.push(`  ${'total'.padEnd(14)}${totals.map(t => String(t).padStart(10)).join('')}`)
  out.push(`  ${'seconds'.padEnd(14)}${phases.map(p => p.seconds.toFixed(3).padStart(10)).join('')}`)
  out.push(`  ${'daemon cpu s'.padEnd(14)}${phases.map(p => (p.cpu ?? NaN).toFixed(2).padStart(10)).join('')}`)
  out.push(`  ${'cpu µs/req'.padEnd(14)}${phases.map((p, i) => (totals[i] > 0 ? (1e6 * (p.cpu ?? NaN) / totals[i]).toFixed(0) : '-').padStart(10)).join('')}`)
  for (const p of phases) {
    if (p.syscalls !== undefined) out.push('', `system calls of the daemon, ${p.temp} (strace -c -f):`, p.syscalls.trim())
  }
  if (o.cpuProf) {
    const prof = await cpuProfile(o, view, layers, work)
    out.push('', `CPU profiles (no debug logging; runs took ${prof.seconds.map(s => s.toFixed(2)).join(' s, ')} s), one per thread:`)
    for (const file of prof.files) out.push('', file, summarizeProfile(file))
  }
  process.stdout.write(out.join('\n') + '\n')
  return 0
}

main().then(
  code => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
