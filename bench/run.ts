/**
 * `npm run bench [-- OPTIONS]`: cost against layer depth for unionfs-ts and
 * its peers. See bench/README.md for what is measured and how to read it.
 *
 * The loop: for each depth, for each read workload, for each system, a
 * mount of its own (so "cold" is cold for the daemon's own caches too):
 * drop the page cache, run once cold, then warm up to --reps times
 * (--cold-reps N: N such mounts, the systems in turn each round, and the
 * cold run's median over them; warm runs on the first only). Then
 * each system mounts a fresh writable branch and the writes run in order,
 * each on every system in turn (--cold-reps N: N such rounds, each on
 * fresh branches, and each write's median). Every mount is unmounted in a `finally`,
 * whatever the workload did. The JSON is rewritten after every workload,
 * so an interrupted run keeps what it measured.
 *
 * Must run as root: mounting overlayfs and bind mounts, dropping caches.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { parseConfig, REPO, USAGE, type Config } from './config'
import { cpuPressure, host, loadAverage, newestMtime } from './machine'
import { cacheDrops, cpuSeconds, dropCaches, killDaemons, killStarted, memoryKiB } from './proc'
import {
  fmtSeconds, median, mountsCsv, reportText, samplesCsv, type MountRecord, type Results, type Sample
} from './results'
import { depthSvg } from './svg'
import { installPeers, makeSystems, type Mounted, type System, type SystemName } from './systems'
import { BIG_FILE, buildLayers, buildView, markDirty, restoreFlat, type BuiltLayers, type BuiltView } from './tree'
import { type Measure, type Temp, type Workload, type WorkloadCtx } from './workloads'

/** Warm runs longer than this are not repeated. */
const REPEAT_UNDER_S = 1

function log (s: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}

let interrupted = false

/** The cold runs so far of one system, depth and workload. */
interface ColdRuns { runs: Measure[], cpu: number[] }

function coldKey (sys: System, layers: BuiltLayers, w: Workload): string {
  return `${sys.name} ${layers.depth} ${w.id}`
}

class Bench {
  readonly res: Results
  private readonly systems: Map<SystemName, System>
  private readonly coldRuns = new Map<string, ColdRuns>()

  constructor (readonly cfg: Config, argv: string[]) {
    this.systems = makeSystems(path.join(cfg.dir, 'tools'), cfg.bin)
    this.res = {
      meta: {
        started: new Date().toISOString(),
        mode: cfg.mode,
        command: ['npm run bench --', ...argv].join(' ').replace(/ --$/, ''),
        host: host(cfg.dir),
        params: cfg.params,
        depths: cfg.depths,
        systems: {},
        skipped: {},
        workloads: Object.fromEntries(cfg.workloads.map(w => [w.id, w.title])),
        timeoutSeconds: cfg.timeoutS,
        warmReps: cfg.reps,
        coldReps: cfg.coldReps,
        notes: []
      },
      samples: [],
      mounts: []
    }
  }

  async prepare (): Promise<System[]> {
    fs.mkdirSync(path.join(this.cfg.dir, 'tools'), { recursive: true })
    if (this.cfg.install) await installPeers(this.cfg.systems, path.join(this.cfg.dir, 'tools'), log)
    const ready: System[] = []
    for (const name of this.cfg.systems) {
      const sys = this.systems.get(name)
      if (sys === undefined) continue
      const why = sys.unavailable()
      if (why !== undefined) {
        this.res.meta.skipped[name] = why
        log(`skipping ${name}: ${why}`)
        continue
      }
      this.res.meta.systems[name] = sys.version()
      ready.push(sys)
    }
    return ready
  }

  private record (s: Sample): void {
    const i = this.res.samples.findIndex(x => x.system === s.system && x.depth === s.depth && x.workload === s.workload && x.temp === s.temp)
    if (i >= 0) this.res.samples[i] = s
    else this.res.samples.push(s)
  }

  /** The sample for a workload from its runs; the check compared with the view or with native's. */
  private sample (sys: System, depth: number, w: Workload, temp: Temp, ctx: WorkloadCtx, runs: Measure[], cpu: number[]): Sample {
    const good = runs.filter(m => m.error === undefined)
    const seconds = median(good.map(m => m.seconds))
    const mid = good.length === 0 ? undefined : good.find(m => m.seconds === seconds) ?? good[good.length >> 1]
    const bad = runs.find(m => m.error !== undefined)
    let expected = w.expect?.(ctx)
    if (expected === undefined && sys.name !== 'native') {
      expected = this.res.samples.find(x => x.system === 'native' && x.depth === depth && x.workload === w.id && x.checkOk !== false)?.check
    }
    const check = mid?.check ?? bad?.check
    const s: Sample = {
      system: sys.name,
      depth,
      workload: w.id,
      temp,
      seconds,
      runs: good.map(m => m.seconds),
      ...(cpu.length > 0 ? { daemonCpu: median(cpu) ?? undefined } : {}),
      ...(check !== undefined ? { check } : {}),
      ...(expected !== undefined ? { expected } : {}),
      ...(check !== undefined && expected !== undefined ? { checkOk: check === expected } : {}),
      ...(runs.some(m => m.drops !== undefined) ? { drops: runs.reduce((a, m) => a + (m.drops ?? 0), 0) } : {}),
      ...(bad?.error !== undefined ? { error: bad.error } : {}),
      ...(runs.some(m => m.timedOut === true) ? { timedOut: true } : {})
    }
    this.record(s)
    return s
  }

  private async mount (sys: System, layers: BuiltLayers, view: BuiltView, group: string, fresh: boolean): Promise<{ m: Mounted, rec: MountRecord }> {
    const base = path.join(this.cfg.dir, 'runs', sys.name)
    const spec = {
      layers: layers.layers,
      flat: view.flat,
      upper: path.join(base, 'upper'),
      work: path.join(base, 'work'),
      mnt: path.join(this.cfg.dir, 'mnt', sys.name),
      log: path.join(base, 'daemon.log')
    }
    if (fresh) {
      fs.rmSync(spec.upper, { recursive: true, force: true })
      fs.rmSync(spec.work, { recursive: true, force: true })
    }
    for (const d of [spec.upper, spec.work, spec.mnt]) fs.mkdirSync(d, { recursive: true })
    spec.mnt = fs.realpathSync(spec.mnt)
    const rec: MountRecord = { system: sys.name, depth: layers.depth, group, mountSeconds: 0, load1: loadAverage() }
    const psi = cpuPressure()
    if (psi !== undefined) rec.cpuPressure = psi
    this.res.mounts.push(rec)
    const t0 = process.hrtime.bigint()
    try {
      const m = await sys.mount(spec)
      rec.mountSeconds = Number(process.hrtime.bigint() - t0) / 1e9
      if (m.pid !== undefined) rec.pid = m.pid
      return { m, rec }
    } catch (err) {
      rec.mountSeconds = Number(process.hrtime.bigint() - t0) / 1e9
      rec.error = (err as Error).message
      throw err
    }
  }

  private async unmount (m: Mounted, rec: MountRecord): Promise<void> {
    if (m.pid !== undefined) {
      const cpu = cpuSeconds(m.pid)
      const mem = memoryKiB(m.pid)
      if (cpu !== undefined) rec.cpuSeconds = cpu
      if (mem !== undefined && Number.isFinite(mem.hwm)) rec.peakRssKiB = mem.hwm
    }
    await m.unmount()
  }

  private ctx (sys: System, m: Mounted, view: BuiltView, layers: BuiltLayers): WorkloadCtx {
    return {
      mnt: m.mnt,
      view,
      layers,
      worker: path.join(__dirname, 'worker.js'),
      bigSource: sys.writesFlat ? path.join(view.flat, BIG_FILE) : path.join(layers.layers[layers.layers.length - 1], BIG_FILE),
      timeoutMs: this.cfg.timeoutS * 1000,
      bigMiB: this.cfg.params.bigBytes >> 20
    }
  }

  private async timedRun (w: Workload, ctx: WorkloadCtx, pid: number | undefined, cpu: number[]): Promise<Measure> {
    const c0 = pid !== undefined ? cpuSeconds(pid) : undefined
    const d0 = cacheDrops()
    const m = await w.run(ctx)
    const d1 = cacheDrops()
    const c1 = pid !== undefined ? cpuSeconds(pid) : undefined
    if (c0 !== undefined && c1 !== undefined) cpu.push(c1 - c0)
    if (Number.isFinite(d1 - d0)) m.drops = d1 - d0
    return m
  }

  /**
   * Costs grow with depth: a workload that went over the time limit at a
   * shallower depth would again, so it is recorded as over the limit
   * without spending the limit once more. Returns whether it was skipped.
   */
  private skipOverLimit (sys: System, depth: number, w: Workload, temps: readonly Temp[]): boolean {
    const before = this.res.samples.find(x => x.system === sys.name && x.workload === w.id && x.temp === 'cold' &&
      x.depth < depth && x.timedOut === true)
    if (before === undefined) return false
    for (const temp of temps) {
      this.record({ system: sys.name, depth, workload: w.id, temp, seconds: null, runs: [], timedOut: true, skipped: `over the limit at depth ${before.depth}` })
    }
    log(`${sys.name} d${depth} ${w.id}: not run, over the limit at depth ${before.depth}`)
    return true
  }

  /** One read workload on its own mount: cold once, then warm. */
  private async readWorkload (sys: System, view: BuiltView, layers: BuiltLayers, w: Workload): Promise<void> {
    if (this.skipOverLimit(sys, layers.depth, w, ['cold', 'warm'])) return
    const fail = (msg: string): void => {
      for (const temp of ['cold', 'warm'] as const) this.record({ system: sys.name, depth: layers.depth, workload: w.id, temp, seconds: null, runs: [], error: msg })
    }
    let mounted: { m: Mounted, rec: MountRecord }
    try {
      mounted = await this.mount(sys, layers, view, w.id, false)
    } catch (err) {
      fail(`mount: ${(err as Error).message}`)
      log(`${sys.name} d${layers.depth} ${w.id}: mount failed: ${(err as Error).message}`)
      return
    }
    const { m, rec } = mounted
    try {
      const ctx = this.ctx(sys, m, view, layers)
      const runs: ColdRuns = { runs: [], cpu: [] }
      this.coldRuns.set(coldKey(sys, layers, w), runs)
      const sc = await this.coldRun(sys, layers, w, ctx, m, runs)
      const cold = runs.runs[0]
      const warm: Measure[] = []
      const cpuWarm: number[] = []
      if (cold.error === undefined && !interrupted) {
        // Repeat only what is cheap: a run slower than a second says its
        // median no better than one run does, and the budget is the matrix.
        let spent = 0
        for (let r = 0; r < this.cfg.reps && !interrupted; r++) {
          const x = await this.timedRun(w, ctx, m.pid, cpuWarm)
          warm.push(x)
          spent += x.seconds
          if (x.error !== undefined || x.seconds > REPEAT_UNDER_S || spent > this.cfg.warmBudgetS) break
        }
      }
      let sw: Sample
      if (warm.length > 0) {
        sw = this.sample(sys, layers.depth, w, 'warm', ctx, warm, cpuWarm)
      } else {
        sw = { system: sys.name, depth: layers.depth, workload: w.id, temp: 'warm', seconds: null, runs: [], skipped: cold.timedOut === true ? 'the cold run went over the limit' : 'the cold run failed' }
        if (cold.timedOut === true) sw.timedOut = true
        this.record(sw)
      }
      log(`${sys.name} d${layers.depth} ${w.id}: cold ${show(sc)}, warm ${show(sw)}`)
    } finally {
      await this.unmount(m, rec)
    }
  }

  /**
   * One more cold run of a read workload, on a fresh mount: its time joins
   * the cold sample, whose median it may move. Not after a cold run that
   * failed or went over the limit.
   */
  private async coldAgain (sys: System, view: BuiltView, layers: BuiltLayers, w: Workload): Promise<void> {
    const prior = this.coldRuns.get(coldKey(sys, layers, w))
    if (prior === undefined || prior.runs.some(m => m.error !== undefined || m.timedOut === true)) return
    let mounted: { m: Mounted, rec: MountRecord }
    try {
      mounted = await this.mount(sys, layers, view, w.id, false)
    } catch (err) {
      log(`${sys.name} d${layers.depth} ${w.id}: mount for another cold run failed: ${(err as Error).message}`)
      return
    }
    const { m, rec } = mounted
    try {
      const sc = await this.coldRun(sys, layers, w, this.ctx(sys, m, view, layers), m, prior)
      log(`${sys.name} d${layers.depth} ${w.id}: cold run ${prior.runs.length}, median ${show(sc)}`)
    } finally {
      await this.unmount(m, rec)
    }
  }

  /** Drop the page cache, run `w` cold on mount `m`, and make the cold sample of all of `runs`. */
  private async coldRun (sys: System, layers: BuiltLayers, w: Workload, ctx: WorkloadCtx, m: Mounted, runs: ColdRuns): Promise<Sample> {
    dropCaches()
    await w.prepare?.(ctx)
    runs.runs.push(await this.timedRun(w, ctx, m.pid, runs.cpu))
    return this.sample(sys, layers.depth, w, 'cold', ctx, runs.runs, runs.cpu)
  }

  /**
   * The writes, in order, each system on its own mount over a fresh
   * writable branch. All systems' mounts are up together so that each
   * write runs on every system back to back, under the same conditions.
   * A later round adds its runs to the first's (not after a run that
   * failed or went over the limit).
   */
  private async writeWorkloads (systems: System[], view: BuiltView, layers: BuiltLayers, ws: Workload[]): Promise<void> {
    const up: Array<{ sys: System, m: Mounted, rec: MountRecord }> = []
    try {
      for (const sys of systems) {
        if (interrupted) break
        try {
          const { m, rec } = await this.mount(sys, layers, view, 'writes', true)
          if (sys.writesFlat) markDirty(view)
          up.push({ sys, m, rec })
        } catch (err) {
          for (const w of ws) this.record({ system: sys.name, depth: layers.depth, workload: w.id, temp: 'cold', seconds: null, runs: [], error: `mount: ${(err as Error).message}` })
          log(`${sys.name} d${layers.depth} writes: mount failed: ${(err as Error).message}`)
        }
      }
      for (const w of ws) {
        for (const { sys, m } of up) {
          if (interrupted) break
          if (this.skipOverLimit(sys, layers.depth, w, ['cold'])) continue
          const key = coldKey(sys, layers, w)
          const runs = this.coldRuns.get(key) ?? { runs: [], cpu: [] }
          if (runs.runs.some(x => x.error !== undefined || x.timedOut === true)) continue
          this.coldRuns.set(key, runs)
          const s = await this.coldRun(sys, layers, w, this.ctx(sys, m, view, layers), m, runs)
          log(`${sys.name} d${layers.depth} ${w.id}: ${runs.runs.length > 1 ? `run ${runs.runs.length}, median ` : ''}${show(s)}`)
        }
      }
    } finally {
      for (const { sys, m, rec } of up) {
        try {
          await this.unmount(m, rec)
        } catch (err) {
          log(`${sys.name}: unmounting ${m.mnt} failed: ${(err as Error).message}`)
        } finally {
          if (sys.writesFlat) restoreFlat(view)
        }
      }
    }
  }

  /**
   * Depth outermost (a run cut short still has whole depths), then the
   * workload, then the system: every system runs a workload within a
   * minute or so of the others, so load from elsewhere on the machine
   * drifts less between the numbers a ratio compares.
   */
  async runAll (ready: System[]): Promise<void> {
    const treeRoot = path.join(this.cfg.dir, 'trees')
    fs.mkdirSync(treeRoot, { recursive: true })
    let t = Date.now()
    const view = buildView(treeRoot, this.cfg.params, log)
    const layersByDepth = new Map<number, BuiltLayers>()
    for (const d of this.cfg.depths) layersByDepth.set(d, buildLayers(treeRoot, this.cfg.params, d, log))
    log(`trees ready in ${((Date.now() - t) / 1000).toFixed(1)} s`)
    const reads = this.cfg.workloads.filter(w => w.kind === 'read')
    const writes = this.cfg.workloads.filter(w => w.kind === 'write')
    for (const depth of this.cfg.depths) {
      const layers = layersByDepth.get(depth)
      if (layers === undefined) continue
      t = Date.now()
      try {
        for (const w of reads) {
          for (let round = 0; round < this.cfg.coldReps; round++) {
            for (const sys of ready) {
              if (interrupted) return
              if (round === 0) await this.readWorkload(sys, view, layers, w)
              else await this.coldAgain(sys, view, layers, w)
            }
          }
          this.save(false)
        }
        for (let round = 0; round < this.cfg.coldReps && writes.length > 0 && !interrupted; round++) {
          await this.writeWorkloads(ready, view, layers, writes)
        }
      } finally {
        fs.rmSync(path.join(this.cfg.dir, 'runs'), { recursive: true, force: true })
      }
      log(`depth ${depth} took ${((Date.now() - t) / 1000).toFixed(1)} s`)
      this.save(false)
    }
  }

  /**
   * While running, and when interrupted, only NAME.partial.json is written:
   * the results of the last complete run stay as they were. A complete run
   * writes NAME.json, the CSVs and the plot, and removes the partial file.
   */
  save (final: boolean): void {
    fs.mkdirSync(this.cfg.out, { recursive: true })
    const stem = path.join(this.cfg.out, this.cfg.name)
    if (!final || interrupted) {
      fs.writeFileSync(`${stem}.partial.json`, JSON.stringify(this.res, null, 1) + '\n')
      return
    }
    this.res.meta.finished = new Date().toISOString()
    fs.writeFileSync(`${stem}.json`, JSON.stringify(this.res, null, 1) + '\n')
    fs.writeFileSync(`${stem}.csv`, samplesCsv(this.res))
    fs.writeFileSync(`${stem}-daemons.csv`, mountsCsv(this.res))
    fs.writeFileSync(path.join(this.cfg.out, svgName(this.cfg.name)), depthSvg(this.res))
    fs.rmSync(`${stem}.partial.json`, { force: true })
  }

  report (): string {
    return reportText(this.res)
  }
}

function show (s: Sample): string {
  if (s.skipped !== undefined) return `not run (${s.skipped})`
  if (s.seconds === null) return s.timedOut === true ? 'over the time limit' : `error (${s.error ?? '?'})`
  return `${fmtSeconds(s.seconds)} s${s.daemonCpu !== undefined ? ` (daemon ${fmtSeconds(s.daemonCpu)} s cpu)` : ''}${s.checkOk === false ? ` WRONG: ${String(s.check)} != ${String(s.expected)}` : ''}${s.error !== undefined ? ` [${s.error}]` : ''}`
}

/** The full mode's plot is depth.svg, the others' depth-NAME.svg. */
function svgName (name: string): string {
  return name === 'full' ? 'depth.svg' : `depth-${name.replace(/\.partial$/, '')}.svg`
}

/** Tables, CSV and plot again from a saved JSON (after changing how they are drawn). */
function replot (file: string): number {
  const res = JSON.parse(fs.readFileSync(file, 'utf8')) as Results
  const dir = path.dirname(file)
  const name = path.basename(file, '.json')
  fs.writeFileSync(path.join(dir, `${name}.csv`), samplesCsv(res))
  fs.writeFileSync(path.join(dir, `${name}-daemons.csv`), mountsCsv(res))
  fs.writeFileSync(path.join(dir, svgName(name)), depthSvg(res))
  process.stdout.write(reportText(res))
  return 0
}

async function main (argv: string[]): Promise<number> {
  let cfg: Config | undefined
  try {
    cfg = parseConfig(argv)
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  if (cfg === undefined) return 0
  if (cfg.report !== undefined) return replot(cfg.report)
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: must run as root (mounts, drop_caches)\n')
    return 1
  }
  const repoDir = path.relative(REPO, cfg.dir)
  if (!repoDir.startsWith('..') && !path.isAbsolute(repoDir)) {
    process.stderr.write(`bench: --dir must be outside the repository (${REPO})\n`)
    return 2
  }
  let signals = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++
    interrupted = true
    log(signals === 1 ? `${sig}: stopping the running workload, unmounting` : `${sig} again: killing the daemons`)
    killStarted()
    if (signals > 1) killDaemons()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const bench = new Bench(cfg, argv)
  const t0 = Date.now()
  const libDir = path.join(path.dirname(path.dirname(cfg.bin)), 'dist', 'lib')
  const libBefore = newestMtime(libDir)
  const ready = await bench.prepare()
  try {
    await bench.runAll(ready)
  } finally {
    if (newestMtime(libDir) !== libBefore) {
      const note = `${libDir} changed during the run: later mounts may have run newer code than earlier ones`
      bench.res.meta.notes.push(note)
      log(note)
    }
    bench.save(true)
  }
  process.stdout.write(bench.report())
  log(interrupted
    ? `stopped after ${((Date.now() - t0) / 1000).toFixed(0)} s; what was measured is in ${path.join(cfg.out, `${cfg.name}.partial.json`)}`
    : `done in ${((Date.now() - t0) / 1000).toFixed(0)} s; results in ${cfg.out}`)
  return interrupted ? 130 : 0
}

main(process.argv.slice(2)).then(
  code => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
